package main

import (
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/workflows/playbooktest"
)

func newPlaybookTestCmd() *cobra.Command {
	var (
		run     string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "test DIR...",
		Short: "Run the playbook tests (*_test.yaml) in each directory, with every action simulated",
		Long: `Run the author tests next to the playbooks in each DIR. A foo_test.yaml lists
cases for the playbook in foo.yaml: an alert and what must come of it. Each case
is matched as the dispatcher matches, and, when it matches, the incident runs in
Temporal's in-process test environment with every action simulated: no cluster,
Temporal server or NATS is needed or contacted.

The report reads like go test's. The exit status is 1 when a case failed or a
playbook or test file has a problem, and 0 otherwise, including for a directory
without test files. docs/playbook-tests.md describes the test file format.`,
		Args:          cobra.MinimumNArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, dirs []string) error {
			opts := playbooktest.Options{Verbose: verbose, Playbooks: app.PlaybookOptions(), Actions: app.SimulatedActions()}
			if run != "" {
				re, err := regexp.Compile(run)
				if err != nil {
					return fmt.Errorf("--run: %w", err)
				}
				opts.Run = re
			}
			failed := 0
			for _, dir := range dirs {
				res, err := playbooktest.Run(cmd.Context(), cmd.OutOrStdout(), dir, opts)
				if err != nil {
					return err
				}
				if !res.OK() {
					failed++
				}
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("playbook tests failed in %d of %d directories", failed, len(dirs))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "run only the cases whose <playbook>/<case name> matches this regular expression")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print what every case observed, not only what the failing ones did")
	return cmd
}
