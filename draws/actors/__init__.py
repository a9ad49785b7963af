"""Each actor's behaviour, importable and testable in-process.

The scripts at the project's root only parse arguments and call these.
"""
