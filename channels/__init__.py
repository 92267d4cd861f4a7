"""Channels, by the process they run in (docs/architecture.md):

- gateway/: the aiohttp gateway process (app, workers, rate limit);
- sms/: the SMS medium (webhook, signature, sender), served by the gateway;
- staff/: the staff console, served by the gateway;
- rasa_bridge/: code Rasa loads into its own process (connector, NLU components, model swap);
- action_server: the action server process's launcher.
"""
