"""Pure policy: keywords, PHI classes, phone numbers, the office's configuration, the bot's words,
language, clarifying questions. No I/O beyond reading a file it is given, and no import of
anything else in the project (tests/test_layout.py holds it to that).
"""
