package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
)

func newPlaybookExplainCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "explain FILE ALERT",
		Short: "Show why a playbook matches an alert or not, with the value of every sub-expression",
		Long: `Evaluate the playbook in FILE (one YAML file) against the JSON alert in ALERT
(- reads standard input) as the dispatcher would, and print the value of every
sub-expression of its match expression and, when that is true, of its
incidentKey. Operands that && and || skip are shown as not evaluated, and a
run-time error is shown on the sub-expression that failed.

Only FILE is loaded, so problems in other playbooks of its directory do not
get in the way. The exit status is 0 whether or not the playbook matched; it
is non-zero when FILE or ALERT cannot be read, decoded or loaded.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("unknown output format %q: use text or json", output)
			}
			// Only FILE is loaded, whatever it is named, so that problems
			// in other playbooks of its directory do not get in the way.
			pb, err := playbooks.LoadFile(args[0], playbooks.LoadOptions{})
			if err != nil {
				return err
			}
			a, err := readExplainAlert(cmd, args[1])
			if err != nil {
				return err
			}
			e, err := playbooks.Explain(pb, a)
			if err != nil {
				return err
			}
			e.File = args[0]
			if output == "json" {
				// Expressions are full of && and <, which the default
				// HTML escaping would turn into \u0026\u0026 and \u003c.
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(e)
			}
			return e.WriteText(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// readExplainAlert reads and decodes the alert in name, or on standard input for
// "-". A decode error carries its reason, such as invalid_json.
func readExplainAlert(cmd *cobra.Command, name string) (alert.Alert, error) {
	var (
		data []byte
		err  error
	)
	if name == "-" {
		data, err = io.ReadAll(cmd.InOrStdin())
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return alert.Alert{}, fmt.Errorf("read alert: %w", err)
	}
	a, err := alert.Decode(data, alert.Limits{})
	if err != nil {
		return alert.Alert{}, fmt.Errorf("decode alert %s: %w", name, err)
	}
	return a, nil
}
