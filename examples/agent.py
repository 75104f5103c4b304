"""An agent-side script that drives lightning-mcp over MCP end to end, with the official MCP
Python SDK (`pip install 'mcp>=2'`; the tests pin it in tests/clients/requirements.txt).

It discovers the tools and models, defines a CNN as a JSON layer list (the Sequential no-code
model), trains it on the built-in 8x8 digits, tests the checkpoint on the held-out digits and
predicts a few of them.

usage: python examples/agent.py SERVER_COMMAND...     (stdio)
       python examples/agent.py http://127.0.0.1:8000/mcp
e.g.   python examples/agent.py target/release/lightning-mcp
"""

import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters

SEQUENTIAL = "lightning_mcp.models.sequential.Sequential"

# A small CNN for images [1, 8, 8], as an agent would write it: no code, only a config.
CNN = {
    "_target_": SEQUENTIAL,
    "input_shape": [1, 8, 8],
    "layers": [
        {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"type": "batch_norm"},
        {"type": "relu"},
        {"type": "max_pool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "linear", "out": 64},
        {"type": "relu"},
        {"type": "linear", "out": 10},
    ],
    "lr": 0.01,
}
DIGITS = {"dataset": "digits", "shuffle": True}


async def call(client, tool, arguments):
    """Calls `tool`; returns its structured result, or exits with the tool's error."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        text = result.content[0].text if result.content else "(no message)"
        sys.exit(f"{tool} failed: {text}")
    return result.structured_content


async def main(target):
    server = (
        target[0]
        if target[0].startswith("http")
        else StdioServerParameters(command=target[0], args=target[1:], env=dict(os.environ))
    )
    async with Client(server, read_timeout_seconds=600) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        print("tools:", ", ".join(tools))
        models = await call(client, "lightning.inspect", {"what": "models"})
        print("models:", ", ".join(m["target"] for m in models["models"]))

        trained = await call(
            client,
            "lightning.train",
            {"model": CNN, "data": DIGITS, "trainer": {"max_epochs": 3, "seed": 0}},
        )
        metrics = trained["metrics"]
        print(
            f"trained {trained['model']['num_parameters']} parameters in "
            f"{trained['duration_seconds']:.1f} s on {trained['trainer']['device']['backend']}: "
            f"val_acc {metrics['val_acc']:.3f}, checkpoint {trained['checkpoint_path']}"
        )

        checkpoint = {"model": CNN, "data": DIGITS, "ckpt_path": trained["checkpoint_path"]}
        tested = await call(client, "lightning.test", checkpoint)
        print(f"test_acc {tested['metrics']['test_acc']:.3f} on {tested['data']['test_samples']} held-out digits")

        predicted = await call(
            client, "lightning.predict", {**checkpoint, "trainer": {"limit_predict_batches": 1}}
        )
        logits = predicted["predictions"][0]
        digits = [max(range(10), key=row.__getitem__) for row in logits[:10]]
        print("first predicted digits:", digits)
        print(json.dumps({"val_acc": metrics["val_acc"], "test_acc": tested["metrics"]["test_acc"]}))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1:]))
