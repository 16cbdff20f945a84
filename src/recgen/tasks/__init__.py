"""Task level: what generative recommendation does for a person, over fitted models and the LLM backends.

Today: top-K recommendation for users and sessions (``topk``). The conversational recommender, grounded
explanations and personalised item text land here next (see docs/architecture.md).
"""
