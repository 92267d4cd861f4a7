"""Running it: the stack supervisor (``patientbot up``) and the terminal chat.
"""
