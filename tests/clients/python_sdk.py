"""Drives lightning-mcp with the official MCP Python SDK (`mcp`, pinned in requirements.txt).

usage: python_sdk.py MODE TARGET...
  MODE    auto (server/discover, falling back to initialize) | legacy (initialize only)
  TARGET  http://HOST:PORT/mcp, or the server command line for stdio

Checks: the negotiated era, ping (legacy era), tools/list, lightning.inspect, lightning.train
with a progress callback (at least one notification per epoch, strictly increasing, total =
planned steps, none after the result), every other tool (validate, test and predict with the
training's checkpoint, checkpoint list, inspect help), bad arguments -> isError naming the
field, unknown tool -> a protocol error. Prints one line per check; exits non-zero on the first failure.
"""

import asyncio
import os
import sys
import warnings

from mcp import Client, MCPError, StdioServerParameters
from mcp.types.version import MODERN_PROTOCOL_VERSIONS

SIMPLE = "lightning_mcp.models.simple.SimpleClassifier"
EPOCHS = 3


def check(condition, what, detail=""):
    if not condition:
        print(f"FAIL {what}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {what}", flush=True)


async def main(mode, target):
    server = (
        target[0]
        if target[0].startswith("http")
        else StdioServerParameters(command=target[0], args=target[1:], env=dict(os.environ))
    )
    async with Client(server, mode=mode, read_timeout_seconds=300) as client:
        version = client.protocol_version
        modern = version in MODERN_PROTOCOL_VERSIONS
        expected = "2026-07-28" if mode == "auto" else "2025-11-25"
        check(version == expected, f"negotiated {version}", f"expected {expected}")
        if not modern:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await client.send_ping()
            check(True, "ping")
        tools = [t.name for t in (await client.list_tools()).tools]
        check({"lightning.train", "lightning.inspect"} <= set(tools), "tools/list", tools)

        env = await client.call_tool("lightning.inspect", {"what": "environment"})
        check(
            not env.is_error and env.structured_content.get("lightning_mcp"),
            "lightning.inspect environment",
            env,
        )

        updates = []
        finished = False

        async def on_progress(progress, total, message):
            if finished:
                check(False, "no progress after the result", (progress, total, message))
            updates.append((progress, total, message))

        train = await client.call_tool(
            "lightning.train",
            {
                "model": {"_target_": SIMPLE, "input_dim": 4, "num_classes": 3},
                "trainer": {"max_epochs": EPOCHS, "seed": 1},
            },
            progress_callback=on_progress,
        )
        finished = True
        result = train.structured_content or {}
        check(not train.is_error and result.get("status") == "completed", "lightning.train", train)
        steps = result["trainer"]["global_step"]
        check(len(updates) >= EPOCHS, f"{len(updates)} progress notifications", updates)
        values = [p for p, _, _ in updates]
        check(values == sorted(set(values)), "progress strictly increasing", values)
        check(values[-1] == steps and updates[-1][1] == steps, "progress reaches the total", updates)
        check(all("epoch" in (m or "") for _, _, m in updates), "progress messages name the epoch")

        # Every other tool, with the checkpoint the training wrote (its sizes come with it).
        ckpt = result["checkpoint_path"]
        for name in ("lightning.validate", "lightning.test", "lightning.predict"):
            run = await client.call_tool(name, {"model": {"_target_": SIMPLE}, "ckpt_path": ckpt})
            check(not run.is_error and (run.structured_content or {}).get("status") == "completed", name, run)
        listed = await client.call_tool("lightning.checkpoint", {"action": "list"})
        check(not listed.is_error and (listed.structured_content or {}).get("count", 0) >= 1, "lightning.checkpoint list", listed)
        helped = await client.call_tool("lightning.inspect", {"what": "help", "topic": "trainer"})
        options = (helped.structured_content or {}).get("options", {})
        check(not helped.is_error and "val_check_interval" in options, "lightning.inspect help", helped)
        expected_tools = {"lightning.train", "lightning.validate", "lightning.test", "lightning.predict",
                          "lightning.checkpoint", "lightning.inspect"}
        check(expected_tools <= set(tools), "every tool listed and called", tools)

        bad = await client.call_tool("lightning.train", {"model": {"_target_": SIMPLE}, "trainer": {"max_epochs": 0}})
        text = bad.content[0].text if bad.content else ""
        check(bad.is_error and "max_epochs" in text, "bad arguments -> isError naming the field", text)

        try:
            await client.call_tool("no.such.tool", {})
            check(False, "unknown tool -> protocol error", "the call succeeded")
        except MCPError as e:
            check("no.such.tool" in str(e), "unknown tool -> protocol error", e)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
