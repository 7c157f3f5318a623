// Command go-client is a Baton client in Go, built from code generated out of proto/ with
// Debian's protoc, protoc-gen-go and protoc-gen-go-grpc against Debian's grpc-go
// (golang-google-grpc-dev) and protobuf runtime (golang-google-protobuf-dev), offline:
//
//	go-client --ca ca.pem --cert alice.pem --key alice.key --metadata HOST:PORT \
//	    --scheduler HOST:PORT --results HOST:PORT --node node1 --node node2
//
// It lists the tasks, runs demo::echo in the background on the given nodes with an input,
// checks that a bad input is refused with INVALID_ARGUMENT and a BadRequest naming the
// parameter, watches the run's event log from the start until the run is final, reads the
// run's status, and checks each answer. On success it prints one JSON line describing what it
// saw and exits 0; on any mismatch it prints `mismatch: <what>` on stderr and exits 1 (2 for
// bad arguments).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	batonv1 "github.com/baton-tasks/baton/gen/go/baton/v1"
	protov1 "github.com/golang/protobuf/proto"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

const (
	message  = "hello from go"
	deadline = 60 * time.Second
)

// codec marshals the generated (APIv2) messages with google.golang.org/protobuf. grpc-go 1.33's
// own codec only knows the older github.com/golang/protobuf messages, so it is replaced under
// the same name; anything else still goes through the older library.
type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v interface{}) ([]byte, error) {
	if m, ok := v.(protoreflect.ProtoMessage); ok {
		return protov2.Marshal(m)
	}
	if m, ok := v.(protov1.Message); ok {
		return protov1.Marshal(m)
	}
	return nil, fmt.Errorf("cannot marshal %T: not a protocol buffer message", v)
}

func (codec) Unmarshal(data []byte, v interface{}) error {
	if m, ok := v.(protoreflect.ProtoMessage); ok {
		return protov2.Unmarshal(data, m)
	}
	if m, ok := v.(protov1.Message); ok {
		return protov1.Unmarshal(data, m)
	}
	return fmt.Errorf("cannot unmarshal into %T: not a protocol buffer message", v)
}

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "mismatch: "+format+"\n", args...)
	os.Exit(1)
}

func expect(ok bool, format string, args ...interface{}) {
	if !ok {
		fail(format, args...)
	}
}

func check(err error, what string) {
	if err != nil {
		s, _ := status.FromError(err)
		fail("%s failed: %s %s", what, s.Code(), s.Message())
	}
}

func usage(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go-client: "+format+"\n", args...)
	os.Exit(2)
}

func dial(addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	conn, err := grpc.Dial(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		usage("cannot dial %s: %v", addr, err)
	}
	return conn
}

func main() {
	encoding.RegisterCodec(codec{})
	ca := flag.String("ca", "", "CA certificate (PEM) the services' certificates chain to")
	cert := flag.String("cert", "", "operator certificate (PEM)")
	key := flag.String("key", "", "operator private key (PEM)")
	metadataAddr := flag.String("metadata", "", "metadata service HOST:PORT")
	schedulerAddr := flag.String("scheduler", "", "scheduler HOST:PORT")
	resultsAddr := flag.String("results", "", "results service HOST:PORT")
	var nodes repeated
	flag.Var(&nodes, "node", "identity to run on (repeat)")
	flag.Parse()
	if *ca == "" || *cert == "" || *key == "" || *metadataAddr == "" || *schedulerAddr == "" || *resultsAddr == "" || len(nodes) == 0 {
		usage("--ca, --cert, --key, --metadata, --scheduler, --results and at least one --node are required")
	}
	sort.Strings(nodes)

	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		usage("cannot load the operator certificate: %v", err)
	}
	caPEM, err := os.ReadFile(*ca)
	if err != nil {
		usage("cannot read the CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		usage("%s holds no PEM certificate", *ca)
	}
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12})

	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()

	// The catalog: demo::echo is listed and takes a `message`.
	metadataConn := dial(*metadataAddr, creds)
	defer metadataConn.Close()
	catalog := batonv1.NewMetadataServiceClient(metadataConn)
	listed, err := catalog.ListTasks(ctx, &batonv1.ListTasksRequest{Environment: "production"})
	check(err, "ListTasks")
	var names []string
	for _, t := range listed.GetTasks() {
		names = append(names, t.GetName())
	}
	expect(contains(names, "demo::echo"), "ListTasks has no demo::echo: %v", names)
	got, err := catalog.GetTask(ctx, &batonv1.GetTaskRequest{Environment: "production", Task: "demo::echo"})
	check(err, "GetTask")
	var params []string
	for _, p := range got.GetTask().GetParameters() {
		params = append(params, p.GetName())
	}
	expect(contains(params, "message"), "demo::echo has no 'message' parameter: %v", params)

	// The run, started in the background; the caller is the certificate's CN.
	schedulerConn := dial(*schedulerAddr, creds)
	defer schedulerConn.Close()
	scheduler := batonv1.NewSchedulerServiceClient(schedulerConn)
	input, _ := json.Marshal(map[string]string{"message": message})
	started, err := scheduler.RunTask(ctx, &batonv1.RunTaskRequest{
		Task:        "demo::echo",
		Environment: "production",
		InputJson:   string(input),
		Filter:      &batonv1.Filter{Identities: nodes},
		Background:  true,
	})
	check(err, "RunTask")
	taskID := started.GetTaskId()
	expect(regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(taskID), "task id %q is not 32 lowercase hex", taskID)

	// A bad input is refused with INVALID_ARGUMENT and a BadRequest violation for the parameter.
	_, err = scheduler.RunTask(ctx, &batonv1.RunTaskRequest{Task: "demo::echo", InputJson: `{"message":42}`, Filter: &batonv1.Filter{Identities: nodes}})
	expect(err != nil, "RunTask with message=42 was accepted")
	refused, _ := status.FromError(err)
	expect(refused.Code() == codes.InvalidArgument, "bad input gave %s, expected InvalidArgument", refused.Code())
	violated := []string{}
	for _, d := range refused.Details() {
		if bad, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range bad.GetFieldViolations() {
				violated = append(violated, v.GetField())
			}
		}
	}
	expect(len(violated) == 1 && violated[0] == "message", "bad input details name fields %v, expected [message]", violated)

	// The event log, followed from its first event until the run is final.
	resultsConn := dial(*resultsAddr, creds)
	defer resultsConn.Close()
	results := batonv1.NewResultsServiceClient(resultsConn)
	stream, err := results.WatchRunEvents(ctx, &batonv1.WatchRunEventsRequest{TaskId: taskID, Follow: true})
	check(err, "WatchRunEvents")
	var runStates []string
	nodeStates := map[string][]string{}
	seen := map[string]bool{}
	events := 0
	for {
		msg, err := stream.Recv()
		check(err, "WatchRunEvents")
		event := msg.GetEvent()
		expect(event.GetTaskId() == taskID, "event of task %s, expected %s", event.GetTaskId(), taskID)
		expect(!seen[event.GetId()], "event id %s repeats", event.GetId())
		seen[event.GetId()] = true
		events++
		if changed := event.GetRunStateChanged(); changed != nil {
			runStates = append(runStates, changed.GetState().String())
			if s := changed.GetState(); s == batonv1.RunState_RUN_STATE_SUCCEEDED || s == batonv1.RunState_RUN_STATE_FAILED || s == batonv1.RunState_RUN_STATE_CANCELLED {
				break
			}
		} else if result := event.GetNodeResult(); result != nil {
			nodeStates[result.GetHost()] = append(nodeStates[result.GetHost()], result.GetState().String())
		}
	}
	expect(len(runStates) > 0 && runStates[len(runStates)-1] == "RUN_STATE_SUCCEEDED", "run states %v, expected to end in RUN_STATE_SUCCEEDED", runStates)
	final := map[string]string{}
	for node, states := range nodeStates {
		final[node] = states[len(states)-1]
		expect(final[node] == "NODE_STATE_SUCCEEDED", "%s went through %v, expected to end in NODE_STATE_SUCCEEDED", node, states)
	}
	expect(len(final) == len(nodes), "events for nodes %v, expected %v", final, nodes)

	// The run's status: every node succeeded and echoed the message.
	st, err := results.GetRunStatus(ctx, &batonv1.GetRunStatusRequest{TaskId: taskID})
	check(err, "GetRunStatus")
	expect(st.GetRun().GetTask() == "demo::echo", "status of task %s", st.GetRun().GetTask())
	expect(st.GetRun().GetCaller() == "cert=alice", "run caller %q, expected cert=alice", st.GetRun().GetCaller())
	expect(st.GetRun().GetCreateTime().GetSeconds() > 0, "run has no create_time")
	expect(st.GetSummary().GetSuccess() && st.GetSummary().GetCompleted(), "summary %v", st.GetSummary())
	expect(int(st.GetSummary().GetNodes()) == len(nodes), "summary counts %d nodes, expected %d", st.GetSummary().GetNodes(), len(nodes))
	expect(int(st.GetStats().GetSuccess()) == len(nodes), "stats.success %d, expected %d", st.GetStats().GetSuccess(), len(nodes))
	var hosts []string
	for _, item := range st.GetItems() {
		hosts = append(hosts, item.GetHost())
		expect(item.GetExitcode() == 0, "%s exit code %d", item.GetHost(), item.GetExitcode())
		echoed := item.GetValue().GetFields()["message"].GetStringValue()
		expect(echoed == message, "%s value %v, expected message %q", item.GetHost(), item.GetValue().AsMap(), message)
	}
	expect(strings.Join(hosts, ",") == strings.Join(nodes, ","), "items for %v, expected %v", hosts, nodes)

	report, _ := json.Marshal(map[string]interface{}{
		"task_id": taskID, "caller": st.GetRun().GetCaller(), "run_states": runStates, "nodes": final, "events": events, "success": st.GetSummary().GetSuccess(),
	})
	fmt.Println(string(report))
}

func contains(list []string, want string) bool {
	for _, s := range list {
		if s == want {
			return true
		}
	}
	return false
}
