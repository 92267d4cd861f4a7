"""What runs inside Rasa's process: the gateway connector (credentials.yml), the NLU components
(config.yml), the model swap, the review-inbox capture and Rasa speed-ups.
"""
