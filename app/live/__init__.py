"""Live video in the operating room: the live view (`LiveWindow`), its session on the engine's pipeline, the
HUD, the worker jobs behind freeze / classify / save / record, and the GUI half of `oncolens bench live`."""

from app.live.bench import run_live_view_bench

__all__ = ["run_live_view_bench"]
