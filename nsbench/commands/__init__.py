"""One module per subcommand, each exposing `add_parser(subparsers)` and a handler."""
