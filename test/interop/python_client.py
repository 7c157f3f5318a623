"""A Baton client in Python, from stubs generated out of proto/ (Debian's protoc and grpc plugin).

Run with Debian's /usr/bin/python3, which sees python3-grpcio and python3-protobuf:

    /usr/bin/python3 test/interop/python_client.py --stubs DIR --metadata HOST:PORT \
        --scheduler HOST:PORT --results HOST:PORT --node node1 --node node2

It lists the tasks, runs demo::echo in the background on the given nodes with an input, watches
the run's event log from the start until the run is final, reads the run's status, and checks
each answer. On success it prints one JSON line describing what it saw and exits 0; on any
mismatch it prints `mismatch: <what>` on stderr and exits 1 (2 for bad arguments).
"""

import argparse
import json
import sys

MESSAGE = "hello from python"
DEADLINE_S = 60


def fail(what):
    print(f"mismatch: {what}", file=sys.stderr)
    sys.exit(1)


def expect(condition, what):
    if not condition:
        fail(what)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stubs", required=True, help="directory holding the generated baton/v1 modules")
    parser.add_argument("--metadata", required=True)
    parser.add_argument("--scheduler", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--node", action="append", required=True, help="identity to run on (repeat)")
    args = parser.parse_args()

    sys.path.insert(0, args.stubs)
    import grpc
    from baton.v1 import metadata_service_pb2 as metadata_pb
    from baton.v1 import metadata_service_pb2_grpc as metadata_grpc
    from baton.v1 import filter_pb2
    from baton.v1 import results_service_pb2 as results_pb
    from baton.v1 import results_service_pb2_grpc as results_grpc
    from baton.v1 import run_pb2
    from baton.v1 import scheduler_service_pb2 as scheduler_pb
    from baton.v1 import scheduler_service_pb2_grpc as scheduler_grpc
    from google.protobuf.json_format import MessageToDict

    caller = [("x-baton-caller", "user=python-interop")]
    nodes = sorted(args.node)

    with grpc.insecure_channel(args.metadata) as ch:
        catalog = metadata_grpc.MetadataServiceStub(ch)
        listed = catalog.ListTasks(metadata_pb.ListTasksRequest(environment="production"), timeout=DEADLINE_S)
        names = [t.name for t in listed.tasks]
        expect("demo::echo" in names, f"ListTasks has no demo::echo: {names}")
        task = catalog.GetTask(metadata_pb.GetTaskRequest(environment="production", task="demo::echo"), timeout=DEADLINE_S).task
        params = {p.name: p for p in task.parameters}
        expect("message" in params, f"demo::echo has no 'message' parameter: {list(params)}")

    with grpc.insecure_channel(args.scheduler) as ch:
        scheduler = scheduler_grpc.SchedulerServiceStub(ch)
        started = scheduler.RunTask(
            scheduler_pb.RunTaskRequest(
                task="demo::echo",
                environment="production",
                input_json=json.dumps({"message": MESSAGE}),
                filter=filter_pb2.Filter(identities=nodes),
                background=True,
            ),
            timeout=DEADLINE_S,
            metadata=caller,
        )
        task_id = started.task_id
        expect(len(task_id) == 32 and all(c in "0123456789abcdef" for c in task_id), f"task id {task_id!r} is not 32 lowercase hex")

        # A bad input is refused with INVALID_ARGUMENT naming the parameter.
        try:
            scheduler.RunTask(
                scheduler_pb.RunTaskRequest(task="demo::echo", input_json=json.dumps({"message": 42}), filter=filter_pb2.Filter(identities=nodes)),
                timeout=DEADLINE_S,
                metadata=caller,
            )
            fail("RunTask with message=42 was accepted")
        except grpc.RpcError as err:
            expect(err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"bad input gave {err.code()}, expected INVALID_ARGUMENT")
            expect("message" in (err.details() or ""), f"bad input error does not name the parameter: {err.details()!r}")

    final_states = {run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED}
    with grpc.insecure_channel(args.results) as ch:
        results = results_grpc.ResultsServiceStub(ch)
        run_states = []
        node_states = {}
        event_ids = []
        for msg in results.WatchRunEvents(results_pb.WatchRunEventsRequest(task_id=task_id, follow=True), timeout=DEADLINE_S):
            event = msg.event
            expect(event.task_id == task_id, f"event of task {event.task_id}, expected {task_id}")
            event_ids.append(event.id)
            kind = event.WhichOneof("event")
            if kind == "run_state_changed":
                run_states.append(run_pb2.RunState.Name(event.run_state_changed.state))
                if event.run_state_changed.state in final_states:
                    break
            elif kind == "node_result":
                node_states.setdefault(event.node_result.host, []).append(run_pb2.NodeState.Name(event.node_result.state))
        expect(run_states and run_states[-1] == "RUN_STATE_SUCCEEDED", f"run states {run_states}, expected to end in RUN_STATE_SUCCEEDED")
        expect(sorted(node_states) == nodes, f"events for nodes {sorted(node_states)}, expected {nodes}")
        for node, states in node_states.items():
            expect(states[-1] == "NODE_STATE_SUCCEEDED", f"{node} went through {states}, expected to end in NODE_STATE_SUCCEEDED")
        expect(len(set(event_ids)) == len(event_ids), f"event ids repeat: {event_ids}")

        status = results.GetRunStatus(results_pb.GetRunStatusRequest(task_id=task_id), timeout=DEADLINE_S)
        expect(status.run.task == "demo::echo", f"status of task {status.run.task}")
        expect(status.run.create_time.seconds > 0, "run has no create_time")
        expect(status.summary.success and status.summary.completed, f"summary {MessageToDict(status.summary)}")
        expect(status.summary.nodes == len(nodes), f"summary counts {status.summary.nodes} nodes, expected {len(nodes)}")
        expect(status.stats.success == len(nodes), f"stats.success {status.stats.success}, expected {len(nodes)}")
        expect([item.host for item in status.items] == nodes, f"items for {[i.host for i in status.items]}, expected {nodes}")
        for item in status.items:
            value = MessageToDict(item.value)
            expect(item.exitcode == 0, f"{item.host} exit code {item.exitcode}")
            expect(value.get("message") == MESSAGE, f"{item.host} value {value}, expected message {MESSAGE!r}")

    print(json.dumps({"task_id": task_id, "run_states": run_states, "nodes": {n: s[-1] for n, s in sorted(node_states.items())}, "events": len(event_ids), "success": status.summary.success}))


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # a failed call is a mismatch too: one line, no traceback
        if callable(getattr(err, "code", None)) and callable(getattr(err, "details", None)):
            fail(f"call failed: {err.code()} {err.details()}")
        raise
