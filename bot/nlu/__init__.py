"""Machine-learning operations: training data, the PHI scrubber, the review inbox, training,
evaluation and reports, model rollout, background jobs, the safety evaluation.
"""
