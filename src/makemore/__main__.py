from makemore.cli import console

raise SystemExit(console())
