package main

import (
	"cmp"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/soar-dev/soar/activities"
)

func newActionsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{Use: "actions", Short: "The actions playbook steps can use"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the actions this worker can run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "json" {
				return writeJSON(cmd, activities.Catalogue())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ACTION\tDESTRUCTIVE\tINVERSE\tPARAMETERS\tSUMMARY")
			for _, a := range activities.Catalogue() {
				var params []string
				for _, p := range a.Params {
					params = append(params, p.Name)
				}
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", a.Name, a.Destructive, dash(a.Inverse), dash(strings.Join(params, ",")), a.Summary)
			}
			return tw.Flush()
		},
	}
	show := &cobra.Command{
		Use:   "show ACTION",
		Short: "Show an action's parameters, output and the Kubernetes permissions it needs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, ok := activities.Lookup(args[0])
			if !ok {
				return fmt.Errorf("no action %q: 'soar actions list' shows them all", args[0])
			}
			if output == "json" {
				return writeJSON(cmd, a)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "%s\n%s\n\nDestructive:\t%v\nInverse:\t%s\n\nParameters:\n", a.Name, a.Summary, a.Destructive, dash(a.Inverse))
			for _, p := range a.Params {
				req := "optional"
				if p.Required {
					req = "required"
				}
				fmt.Fprintf(w, "  %s\t%s\t%s\t%s (default: %s)\n", p.Name, p.Type, req, p.Doc, dash(p.Default))
			}
			fmt.Fprintln(w, "\nOutput:")
			for _, f := range a.Output {
				fmt.Fprintf(w, "  %s\t%s\t%s\n", f.Name, f.Type, f.Doc)
			}
			fmt.Fprintln(w, "\nKubernetes permissions:")
			for _, p := range a.Permissions {
				group := p.Group
				if group == "" {
					group = "core"
				}
				fmt.Fprintf(w, "  %s\t%s\t%s", group, p.Resource, strings.Join(p.Verbs, ","))
				if cmp.Or(p.Role, a.Role) == activities.RoleLocks {
					fmt.Fprint(w, "\tsoar's lock lists only (the Role in deploy/quarantine-lock.yaml)")
				}
				fmt.Fprintln(w)
			}
			return w.Flush()
		},
	}
	rbac := &cobra.Command{
		Use:   "rbac",
		Short: "Print the worker's ClusterRoles, generated from the actions' permissions",
		Long: `Print, as YAML, one ClusterRole per role: soar-worker-actions for the
containment actions, soar-worker-evidence for kubernetes.snapshot, and
soar-worker-checkpoint for its checkpoints (nodes/proxy, which reaches every
kubelet's API: grant it only if you take checkpoints). deploy/rbac.yaml and
deploy/checkpoint-rbac.yaml hold the same rules, which a test checks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for i, cr := range activities.ClusterRoles() {
				b, err := yaml.Marshal(cr)
				if err != nil {
					return err
				}
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "---")
				}
				fmt.Fprint(cmd.OutOrStdout(), string(b))
			}
			return nil
		},
	}
	for _, c := range []*cobra.Command{list, show} {
		c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	}
	cmd.AddCommand(list, show, rbac)
	return cmd
}
