"""The gateway process: ``python -m channels.gateway.app``, the only process that listens to the outside world.
"""
