"""The `uvs` command line: parses, calls the library, prints."""
