package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/soar-dev/soar/cmd/soar/app"
	"github.com/soar-dev/soar/playbooks"
)

func newPlaybookCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "playbook", Short: "Work with playbooks"}
	cmd.AddCommand(newPlaybookExplainCmd(), newPlaybookTestCmd())
	cmd.AddCommand(&cobra.Command{
		Use:   "lint DIR...",
		Short: "Check every playbook in each directory; print every problem with file, line and column",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			out := cmd.OutOrStdout()
			failed := 0
			for _, dir := range dirs {
				set, err := playbooks.LoadDir(dir, app.PlaybookOptions())
				var le *playbooks.LoadErrors
				switch {
				case errors.As(err, &le):
					for _, e := range le.Errs {
						fmt.Fprintln(out, e)
					}
					failed += len(le.Errs)
				case err != nil:
					fmt.Fprintf(out, "%s: %v\n", dir, err)
					failed++
				default:
					fmt.Fprintf(out, "%s: %d playbooks OK\n", dir, len(set.Playbooks()))
				}
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d problems found", failed)}
			}
			return nil
		},
	})
	return cmd
}
