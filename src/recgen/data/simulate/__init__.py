"""Simulated users (the data level's user agents): agents built from real users' training data that browse
recommendation pages (``session``), decide how a user would (``deciders``), and talk to conversational
recommenders with a hidden target (``dialogue``). Studies over them live in ``recgen.experiments.studies``."""

from recgen.data.simulate.agents import AgentProfile, build_agents
from recgen.data.simulate.deciders import DECIDERS, Decider, GroundedDecider, make_decider
from recgen.data.simulate.dialogue import DialogueUser, RecommenderTurn, UserTurn, leaks, run_episode, title_aliases
from recgen.data.simulate.session import SimulationConfig, run_agents, simulate_agent

__all__ = [
    "AgentProfile", "build_agents", "DECIDERS", "Decider", "GroundedDecider", "make_decider", "DialogueUser",
    "RecommenderTurn", "UserTurn", "leaks", "run_episode", "title_aliases", "SimulationConfig", "run_agents",
    "simulate_agent",
]  # fmt: skip
