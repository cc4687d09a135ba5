// The API page: Swagger UI from the swagger-ui-bundle-v2 package (served by the app itself, so /docs works offline)
// reading the app's own /openapi.json. A file rather than an inline script: the pages' CSP allows only our files.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
  deepLinking: true,
  validatorUrl: null, // Swagger UI would otherwise send the spec to an online validator for its badge
});
