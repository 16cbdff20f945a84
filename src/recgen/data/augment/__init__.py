"""The data level's generation: LLM-written item and user profiles (``profiles``)."""
