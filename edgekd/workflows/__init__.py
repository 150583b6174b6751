"""End-to-end jobs behind the CLI sub-commands: each takes plain options, runs, writes its outputs and
returns a JSON-ready summary. The CLI only parses arguments and prints."""
