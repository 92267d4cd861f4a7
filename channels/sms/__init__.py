"""The SMS medium: the signed webhook (turns a provider's request into an Inbound and the
replies into TwiML), the signature check and the outbound sender.
"""
