package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/soar-dev/soar/dispatch"
)

// newDispatchStatusCmd prints the alert backlog: what waits in the stream,
// what the dispatchers hold, and how old the oldest waiting alert is.
func newDispatchStatusCmd() *cobra.Command {
	var (
		nf       natsFlags
		stream   string
		consumer string
		parked   string
		asJSON   bool
		warnAge  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the alert backlog: alerts waiting, in flight, and the age of the oldest",
		Long: `Read the alert stream and the dispatchers' consumer from NATS JetStream and print
what waits to be dispatched. The stream keeps an alert only until a dispatcher
acknowledged it, so its oldest message is the oldest alert not yet handed to
Temporal. Exits with status 1 when that alert is older than --warn-age, when
the consumer is paused, set to withhold alerts or holds as many alerts in
flight as it allows, when the alert stream or the parked stream is sealed
or set to drop or refuse alerts, or when the dead-letter stream cannot take
dead letters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, err := nf.connect(cmd.Context(), "soar-dispatch-status", 0, zerolog.Nop())
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			b, err := dispatch.ReadBacklog(cmd.Context(), js, stream, consumer)
			if err != nil {
				return err
			}
			switch p, err := dispatch.ReadParked(cmd.Context(), js, parked, nil); {
			case err == nil:
				b.Parked = &p
			case !errors.Is(err, jetstream.ErrStreamNotFound):
				// Created by the first dispatcher of soar 0.4; older ones
				// park nothing.
				return err
			}
			dl, err := dispatch.ReadDeadLetters(cmd.Context(), js, dispatch.DefaultDeadLetterStream, dispatch.DefaultDeadLetterPrefix)
			if err != nil {
				return err
			}
			if dl.Broken() {
				b.DeadLetters = &dl
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(b); err != nil {
					return err
				}
			} else {
				printBacklog(out, b)
			}
			if b.Paused {
				return fmt.Errorf("the alert consumer is paused until %s: nothing is dispatched (a running dispatcher resumes it)", b.PausedUntil.UTC().Format(time.RFC3339))
			}
			if b.Sealed {
				return errors.New("the alert stream is sealed: JetStream refuses every alert, and nobody can unseal it; recreate the stream")
			}
			if len(b.Drops) > 0 {
				return fmt.Errorf("the alert stream is set to drop or refuse alerts (%s) (a running dispatcher puts it back)", strings.Join(b.Drops, ", "))
			}
			if b.Parked != nil && len(b.Parked.Drops) > 0 {
				return fmt.Errorf("the parked stream is set to drop or refuse alerts (%s) (a running dispatcher puts it back)", strings.Join(b.Parked.Drops, ", "))
			}
			if b.DeadLetters != nil {
				return fmt.Errorf("the dead-letter stream %s cannot take dead letters (%s): bad alerts wait in the consumer's window", dl.Stream, deadLetterTrouble(dl))
			}
			if b.WindowFull() {
				return fmt.Errorf("%d alerts in flight, the consumer's limit: nothing more is delivered until some are acknowledged", b.InFlight)
			}
			if len(b.Altered) > 0 {
				return fmt.Errorf("the alert consumer is set to withhold or spoil alerts (%s) (a running dispatcher puts it back or replaces it)", strings.Join(b.Altered, ", "))
			}
			if b.OldestAge > warnAge {
				return fmt.Errorf("the oldest waiting alert is %s old, over --warn-age %s", b.OldestAge.Round(time.Second), warnAge)
			}
			return nil
		},
	}
	nf.register(cmd.Flags())
	cmd.Flags().StringVar(&stream, "stream", dispatch.DefaultStream, "JetStream stream that captures alerts")
	cmd.Flags().StringVar(&consumer, "consumer", dispatch.DefaultConsumer, "durable consumer the dispatchers share")
	cmd.Flags().StringVar(&parked, "parked-stream", dispatch.DefaultParkedStream, "JetStream stream where alerts for pods that do not exist wait for their lane")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&warnAge, "warn-age", dispatch.DefaultBacklogWarnAge, "fail when the oldest waiting alert is older than this")
	return cmd
}

func printBacklog(w io.Writer, b dispatch.Backlog) {
	oldest := "none"
	if !b.Oldest.IsZero() {
		oldest = fmt.Sprintf("%s ago (published %s)", b.OldestAge.Round(time.Millisecond), b.Oldest.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "Stream        %s (consumer %s)\n", b.Stream, b.Consumer)
	if b.Paused {
		fmt.Fprintf(w, "PAUSED        until %s: the consumer delivers nothing; a running dispatcher resumes it within a second\n", b.PausedUntil.UTC().Format(time.RFC3339))
	}
	if b.Sealed {
		fmt.Fprintln(w, "SEALED        the stream refuses every alert, and nobody can unseal it: recreate it")
	}
	if len(b.Drops) > 0 {
		fmt.Fprintf(w, "DROPS ALERTS  %s: the stream drops or refuses alerts; a running dispatcher puts it back within a second\n", strings.Join(b.Drops, ", "))
	}
	if len(b.Altered) > 0 {
		fmt.Fprintf(w, "ALTERED       %s: the consumer withholds alerts, strips them, delivers them late or hands them to a subject; a running dispatcher puts it back or replaces it within a second\n", strings.Join(b.Altered, ", "))
	}
	fmt.Fprintf(w, "Waiting       %d alerts\n", b.Waiting)
	fmt.Fprintf(w, "  undelivered %d\n", b.Undelivered)
	fmt.Fprintf(w, "  in flight   %d\n", b.InFlight)
	if b.WindowFull() {
		fmt.Fprintf(w, "WINDOW FULL   %d of %d alerts in flight: JetStream delivers no more until some are acknowledged\n", b.InFlight, b.MaxInFlight)
	}
	fmt.Fprintf(w, "  redelivery  %d\n", b.Redelivering)
	fmt.Fprintf(w, "Oldest        %s\n", oldest)
	if b.MaxBytes > 0 {
		fmt.Fprintf(w, "Stream full   %.1f%% (%d of %d bytes; at 100%% new alerts are refused)\n", 100*b.Full, b.Bytes, b.MaxBytes)
	}
	if p := b.Parked; p != nil {
		line := fmt.Sprintf("Parked        %d alerts for pods that do not exist", p.Waiting)
		if p.Waiting > 0 {
			line += fmt.Sprintf(", the oldest parked %s ago", p.OldestAge.Round(time.Millisecond))
		}
		fmt.Fprintln(w, line)
		if len(p.Drops) > 0 {
			fmt.Fprintf(w, "DROPS ALERTS  %s: the parked stream drops or refuses alerts; a running dispatcher puts it back within a second\n", strings.Join(p.Drops, ", "))
		}
	}
	if dl := b.DeadLetters; dl != nil {
		fmt.Fprintf(w, "DEAD LETTERS  %s: %s cannot take dead letters, so bad alerts wait in the consumer's window; a running dispatcher mends it within a second unless it is sealed (then recreate it)\n", deadLetterTrouble(*dl), dl.Stream)
	}
	for _, src := range b.Sources {
		heard := "never heard from"
		if src.Inactive >= 0 {
			heard = fmt.Sprintf("last heard %s ago", src.Inactive.Round(time.Millisecond))
		}
		stream := src.Stream
		if src.Domain != "" {
			stream += " in domain " + src.Domain
		}
		line := fmt.Sprintf("Source        %s (%s): %s, %d alerts behind", cmp.Or(src.Cluster, "-"), stream, heard, src.Lag)
		if src.Error != "" {
			line += "; error: " + src.Error
		}
		fmt.Fprintln(w, line)
	}
}

// deadLetterTrouble says why the dead-letter stream cannot take dead
// letters.
func deadLetterTrouble(dl dispatch.DeadLetterState) string {
	switch {
	case dl.Missing:
		return "missing"
	case dl.Sealed:
		return "sealed"
	}
	return strings.Join(dl.Refuses, ", ")
}
