package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/soar-dev/soar/alert"
)

func newAlertCmd() *cobra.Command {
	var (
		nf      natsFlags
		subject string
	)
	cmd := &cobra.Command{Use: "alert", Short: "Work with alerts"}
	send := &cobra.Command{
		Use:   "send FILE...",
		Short: "Publish JSON alerts to soar's alert stream, as a detector would",
		Long: `Publish each FILE (one JSON alert; - reads standard input) to NATS JetStream and
wait until the stream has stored it. Without --subject, a Falco event goes to
falco.<priority>.<rule> as Falcosidekick would publish it, any other alert to
alerts.<source>.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			nc, err := nf.connect(cmd.Context(), "soar-alert-send", 0, zerolog.Nop())
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			for _, f := range files {
				data, err := readInput(f)
				if err != nil {
					return err
				}
				subj := subject
				if subj == "" {
					subj = defaultSubject(data)
				}
				ack, err := js.Publish(cmd.Context(), subj, data)
				if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
					return fmt.Errorf("publish %s to %s: no stream captures that subject; is a soar dispatcher running?", f, subj)
				}
				if err != nil {
					return fmt.Errorf("publish %s to %s: %w", f, subj, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "published %s to %s (stream %s, sequence %d)\n", f, subj, ack.Stream, ack.Sequence)
			}
			return nil
		},
	}
	nf.register(send.Flags())
	send.Flags().StringVar(&subject, "subject", "", "subject to publish to (default: derived from the alert)")
	cmd.AddCommand(send)
	return cmd
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	s = strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(s), "_"), "_")
	if s == "" {
		return "unknown"
	}
	return s
}

// defaultSubject follows Falcosidekick's NATS subject, falco.<priority>.<rule>,
// for Falco events and uses alerts.<source> for anything else. Undecodable
// content still gets a subject: the dispatcher dead-letters it with the reason.
func defaultSubject(data []byte) string {
	a, err := alert.Decode(data, alert.Limits{})
	switch {
	case err != nil:
		return "alerts.unknown"
	case a.Format == "falco":
		return "falco." + slug(a.Severity.String()) + "." + slug(a.Rule)
	default:
		return "alerts." + slug(a.Source)
	}
}
