"""What the office keeps, in Redis, encrypted: appointments, consent, identity verification,
reminders, the outbound gate, staff accounts and sessions, the hand-off queue.
"""
