"""The conversation core and everything around it, one package per concern (docs/architecture.md).

settings (config), logging and the composition root (services) sit here; the rest in packages:
core, safety, records, storage, conversation, nlu, cli, ops.
"""
