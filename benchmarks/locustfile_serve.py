"""Locust users of ``benchmarks/serve_load.py``: each asks the service for a random known user's top 10."""

import os
import random

from locust import HttpUser, constant, task

USERS = os.environ["RECGEN_LOAD_USERS"].split(",")
KEY = os.environ["RECGEN_LOAD_KEY"]


class Recommend(HttpUser):
    wait_time = constant(0)

    @task
    def recommend(self) -> None:
        user = random.choice(USERS)
        self.client.get(f"/v1/users/{user}/recommendations?k=10", headers={"X-API-Key": KEY},
                        name="/v1/users/{user_id}/recommendations")  # fmt: skip
