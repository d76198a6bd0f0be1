package bpf

// The default and the compat build (TCPCLOSE_COMPAT) share one contract
// with Go, and the collector reads both through the Tcpclose types and
// names. These conversions compile only while the generated types of the
// two builds are identical, field for field.
var (
	_ = TcpcloseEvent(TcpcloseCompatEvent{})
	_ = TcpcloseCounts(TcpcloseCompatCounts{})
	_ = TcpcloseConfig(TcpcloseCompatConfig{})
	_ = TcpcloseStormKey(TcpcloseCompatStormKey{})
)
