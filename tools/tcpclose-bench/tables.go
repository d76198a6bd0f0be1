package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/loadgen"
)

// tableCapacity is the tracer's default correlation capacity
// (collector.Options.TrackSockets).
const tableCapacity = 65536

// tableConns is how many undrained closes a full-tables run makes: nearly
// twice the capacity, well within the entries' two-minute age limit, as in
// the report of issue 14 (126,000). The quick run goes just past capacity.
func (b *bench) tableConns() int {
	if b.quick {
		return tableCapacity + 4000
	}
	return 126000
}

// fullTables runs W7 under each of our modes: undrained closes that no data
// follows, each remembered by the tracer until its table is full and
// evicts. It measures the worst case of the tracer's memory.
func (b *bench) fullTables(ctx context.Context, ours []tool) error {
	la := loadArgs{conns: b.tableConns(), duration: 90 * time.Second}
	for _, t := range ours {
		s, err := b.runLoad(ctx, t, loadgen.FullTables, 1, la)
		if err != nil {
			return fmt.Errorf("full tables %s: %w", t.name, err)
		}
		if s.result.Conns != int64(la.conns) {
			return fmt.Errorf("full tables %s: %d of %d connections in %v", t.name, s.result.Conns, la.conns, s.result.Elapsed)
		}
		b.tables = append(b.tables, s)
		fmt.Fprintf(os.Stderr, "full tables %-36s %d undrained closes in %v  evicted %d  peak RSS %.1f MB\n",
			t.name, s.undrained, s.result.Elapsed.Round(time.Millisecond), s.evicted, float64(s.rss)/1e6)
	}
	return nil
}

// tablesFull reports whether a full-tables run filled the tables: the kernel
// counted more undrained closes than the capacity, and the tracer evicted.
func tablesFull(s sample) bool { return s.undrained > tableCapacity && s.evicted > 0 }

// writeTables writes the table of the full-tables runs.
func (b *bench) writeTables(w io.Writer) {
	if len(b.tables) == 0 {
		return
	}
	fmt.Fprintf(w, "## Memory with full tables\n\nW7: %s, %d connections as fast as 2 workers go, once per mode, default flags "+
		"(an undrained close that no data follows is counted, not shown). The tracer remembers each undrained close "+
		"(its owner, for the data_after_close that may follow) for 2 minutes, at most %d: the table fills, and then evicts.\n\n",
		loadgen.FullTables.Describe(), b.tableConns(), tableCapacity)
	fmt.Fprintf(w, "| tool | undrained closes (kernel) | evicted | events written | took | peak RSS |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, s := range b.tables {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %s |\n", s.tool, s.undrained, s.evicted, s.events,
			s.result.Elapsed.Round(10*time.Millisecond), rssColumn([]sample{s}))
	}
	fmt.Fprintf(w, "\n")
}

// tablesTarget is the worst peak RSS of the full-tables runs, and whether
// every run filled its tables.
func (b *bench) tablesTarget() (rss int64, full bool) {
	full = len(b.tables) > 0
	for _, s := range b.tables {
		rss = max(rss, s.rss)
		full = full && tablesFull(s)
	}
	return rss, full
}
