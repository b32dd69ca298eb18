"""tibemsadmin-style commands: the parser (shared by CLI and server) and the executor."""
