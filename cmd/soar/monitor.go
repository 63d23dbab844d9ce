package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/soar-dev/soar/connectors/kube"
)

func newMonitorCmd() *cobra.Command {
	var (
		kubeconfig, lockList, output string
	)
	cmd := &cobra.Command{Use: "monitor", Short: "The quarantine lock the API server enforces (docs/reference-monitor.md)"}
	check := &cobra.Command{
		Use:   "check",
		Short: "Check that the cluster's quarantine lock holds: its admission policies, their bindings, the lock list, and a refused dry run",
		Long: `check reads deploy/quarantine-lock.yaml's policies and bindings from the
cluster, the lock list, and, when a pod is locked, asks the API server for
dry runs the lock must refuse: removing the pod's quarantine label and
deleting its incident's NetworkPolicy. It prints one line per check and
exits 1 when the containment is not tamper-proof, saying why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := parseLockList(lockList)
			if err != nil {
				return err
			}
			cfg, err := kube.RESTConfig(kubeconfig)
			if err != nil {
				return err
			}
			kc, err := kube.NewForConfig(cfg)
			if err != nil {
				return err
			}
			r := kc.CheckMonitor(cmd.Context(), list)
			if output == "json" {
				if err := writeJSON(cmd, r); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(terminalWriter{cmd.OutOrStdout()}, 0, 0, 2, ' ', 0)
				for _, c := range r.Checks {
					result := "ok"
					if !c.OK {
						result = "FAIL"
					}
					fprintf(tw, "%s\t%s\t%s\n", c.What, result, c.Detail)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if r.TamperProof {
					fmt.Fprintln(cmd.OutOrStdout(), "containment tamper-proof")
				} else {
					fmt.Fprintln(cmd.OutOrStdout(), "containment not tamper-proof: "+r.Why)
				}
			}
			if !r.TamperProof {
				return &exitError{code: 1, err: errors.New("containment not tamper-proof: " + r.Why)}
			}
			return nil
		},
	}
	check.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster service account, then $KUBECONFIG or ~/.kube/config)")
	check.Flags().StringVar(&lockList, "lock-list", kube.DefaultLockList.String(), "the lock list ConfigMap, namespace/name")
	check.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.AddCommand(check)
	return cmd
}
