package e2e

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/soar-dev/soar/internal/devstack"
)

// The scale-out test (scale_test.go) runs Temporal and each NATS node in a
// process of its own, so that it can kill a node with SIGKILL and start it
// again on the same ports and store. Those processes are this test binary,
// run again with scaleChildEnv naming what it is to be; TestMain hands
// over to runScaleChild before anything else.
const (
	scaleChildEnv = "SOAR_E2E_SCALE_CHILD"
	// Temporal: its SQLite file and its frontend port.
	scaleTemporalDBEnv   = "SOAR_E2E_TEMPORAL_DB"
	scaleTemporalPortEnv = "SOAR_E2E_TEMPORAL_PORT"
	// A NATS node: its name, client and cluster ports, the cluster ports
	// of the other nodes (comma-separated) and its JetStream store.
	scaleNATSNameEnv        = "SOAR_E2E_NATS_NAME"
	scaleNATSPortEnv        = "SOAR_E2E_NATS_PORT"
	scaleNATSClusterPortEnv = "SOAR_E2E_NATS_CLUSTER_PORT"
	scaleNATSRoutesEnv      = "SOAR_E2E_NATS_ROUTES"
	scaleNATSStoreEnv       = "SOAR_E2E_NATS_STORE"
)

// maybeRunScaleChild never returns in a process started as a child of the
// scale-out test: it runs what scaleChildEnv names until it is killed.
// Anywhere else it returns at once.
func maybeRunScaleChild() {
	var err error
	switch os.Getenv(scaleChildEnv) {
	case "":
		return
	case "temporal":
		err = runTemporalChild()
	case "nats":
		err = runNATSChild()
	default:
		err = fmt.Errorf("%s=%q: want temporal or nats", scaleChildEnv, os.Getenv(scaleChildEnv))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale-out child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runTemporalChild serves Temporal on a file until SIGTERM or SIGINT.
func runTemporalChild() error {
	port, err := strconv.Atoi(os.Getenv(scaleTemporalPortEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", scaleTemporalPortEnv, err)
	}
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{DBPath: os.Getenv(scaleTemporalDBEnv), Port: port, Namespaces: []string{"default"}})
	if err != nil {
		return err
	}
	fmt.Println("temporal serving on", ts.Address())
	waitForSignal()
	return ts.Stop()
}

// runNATSChild serves one node of a NATS cluster with JetStream until
// SIGTERM or SIGINT.
func runNATSChild() error {
	port, err := strconv.Atoi(os.Getenv(scaleNATSPortEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", scaleNATSPortEnv, err)
	}
	clusterPort, err := strconv.Atoi(os.Getenv(scaleNATSClusterPortEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", scaleNATSClusterPortEnv, err)
	}
	var routes []string
	for p := range strings.SplitSeq(os.Getenv(scaleNATSRoutesEnv), ",") {
		routes = append(routes, "nats://127.0.0.1:"+p)
	}
	s, err := server.NewServer(&server.Options{
		ServerName: os.Getenv(scaleNATSNameEnv),
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   os.Getenv(scaleNATSStoreEnv),
		MaxPayload: 8 << 20,
		Cluster:    server.ClusterOpts{Name: "soar-e2e", Host: "127.0.0.1", Port: clusterPort},
		Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		NoSigs:     true,
	})
	if err != nil {
		return err
	}
	// The node's log goes to the test's log file of it.
	s.ConfigureLogger()
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		return fmt.Errorf("nats node %s not ready after 30s", os.Getenv(scaleNATSNameEnv))
	}
	waitForSignal()
	s.Shutdown()
	return nil
}

func waitForSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
