"""How it is kept: encryption and key rotation, the Redis connection, the audit trail and its
export, retention, and the tracker and lock stores Rasa loads from endpoints.yml.
"""
