"""The HTTP service's place (``recgen serve``: FastAPI routes over ``recgen.tasks``, a store, model versions);
see the open issue. Nothing is served yet."""
