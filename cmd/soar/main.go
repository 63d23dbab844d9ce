// Command soar is the incident-response orchestrator's one binary. main only
// wires: every behaviour lives in the packages it calls.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/soar-dev/soar/internal/devstack"
	"github.com/soar-dev/soar/internal/logging"
)

// version is set at build time with -ldflags "-X main.version=…"; `soar
// version` falls back to the build info when it is not.
var version = "dev"

func main() {
	devstack.MaybeRunChildShim() // soar dev's kube-apiserver and etcd start as soar, and become themselves here
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "soar:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit code, e.g. 1 for "lint found problems".
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func exitCode(err error) int {
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return 1
}

type globalFlags struct {
	logLevel  string
	logFormat string
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "soar",
		Short: "Incident response for containers and Kubernetes, on NATS and Temporal",
		Long: `soar turns security alerts (Falco, Falcosidekick, any detector's JSON) into
durable incident workflows: playbooks match alerts, Temporal runs the response,
and activities contain pods, collect evidence, open tickets and ask for approval.

Every flag can also be set with an environment variable: --temporal-address is
SOAR_TEMPORAL_ADDRESS, --nats-url is SOAR_NATS_URL, and so on.`,
		Version:       soarVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindEnv(cmd)
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", logging.FormatAuto, "log format: auto (console on a terminal, else json), console (for people; coloured only on a terminal) or json (for machines)")
	root.AddCommand(
		newDevCmd(g),
		newWorkerCmd(g),
		newDispatchCmd(g),
		newServeCmd(g),
		newPlaybookCmd(),
		newAlertCmd(),
		newIncidentCmd(),
		newActionsCmd(),
		newMonitorCmd(),
		newDecideCmd(true),
		newDecideCmd(false),
		newVersionCmd(),
	)
	return root
}

func (g *globalFlags) logger() (zerolog.Logger, error) {
	return logging.New(os.Stderr, g.logLevel, g.logFormat)
}

// bindEnv sets every flag the user did not give on the command line from its
// SOAR_* environment variable, so that containers can be configured by
// environment alone.
func bindEnv(cmd *cobra.Command) error {
	var errs []string
	set := func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := "SOAR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", name, v, err))
			}
			f.Changed = true
		}
	}
	cmd.Flags().VisitAll(set)
	cmd.InheritedFlags().VisitAll(set)
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return nil
}
