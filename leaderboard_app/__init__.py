"""The live leaderboard: a Starlette app that follows the Dagster instance and streams changes."""
