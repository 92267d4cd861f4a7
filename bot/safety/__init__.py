"""Emergency and crisis detection, in layers: rules (English and Spanish), the statistical risk
classifier, the safety net, and the screen that orders them. In process and independent of
Redis and Rasa, so a person in danger is redirected whatever else is down.
"""
