"""The inbound steps every patient message goes through, whatever its channel, and the pipeline
that orders them (bot.conversation.pipeline). Knows no channel: a channel hands it an Inbound.
"""
