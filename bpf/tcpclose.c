//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * tcpclose: classifies TCP closes and resets in the kernel.
 *
 * Every event is counted in a per-CPU array (exact, whatever happens to the
 * ring); anomalies, and graceful closes when asked, are also streamed through
 * a ring buffer without a wakeup per record. Ownership (pid, comm, cgroup) is
 * recorded in socket-local storage in process context (connect, accept,
 * close) and read from there in softirq, never from the current task.
 *
 * Kernels before 5.12 get a second build of this file, TCPCLOSE_COMPAT
 * (tracing programs there have no socket storage, 5.11, and no socket
 * cookie, 5.12; the collector picks the build at load time): the socket's
 * sk_info lives in a hash map keyed by its address, made afresh at connect,
 * listen and accept and deleted at tcp_destroy_sock; an accepted socket
 * takes its owner from its listener's port; the cookie of events is a hash
 * of netns, addresses and ports, which a TIME_WAIT mini-socket shares with
 * the socket it succeeds. The helpers below hide the difference.
 *
 * Cost: these programs run on every TCP state change, send and receive of
 * the host. tp_btf arguments are BTF pointers, so struct sock fields are
 * read with plain loads (CO-RE relocated) rather than bpf_probe_read
 * calls; the common paths return after a few loads.
 */
#include "kernel.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/*
 * The contract with Go. The enums and structs named here (event_kind,
 * event_flag, reason_slot, event, counts, config) are generated as Go types
 * and constants by bpf2go (-type, see gen.go); the collector uses those,
 * never copies.
 */

/* Event kinds: collector.Kind takes its numbering from here. */
enum event_kind {
	KIND_NONE = 0,
	KIND_UNREAD_CLOSE,
	KIND_UNDRAINED_CLOSE,
	KIND_DATA_AFTER_CLOSE,
	KIND_ABORT_CLOSE,
	KIND_RESET_RECEIVED,
	KIND_RESET_SENT,
	KIND_GRACEFUL_CLOSE,
	NR_KINDS,
};

/* Event flags. */
enum event_flag {
	EVF_OWNER = 1 << 0,	  /* pid, tid, comm, thread and cgroup_id are known */
	EVF_PEER_FIN = 1 << 1,	  /* the peer's FIN had arrived */
	EVF_SHUT_WR = 1 << 2,	  /* shutdown(SHUT_WR) came before close() */
	EVF_REASON = 1 << 3,	  /* reason holds an enum sk_rst_reason */
	EVF_TIME_WAIT = 1 << 4,	  /* seen on a TIME_WAIT mini-socket */
	EVF_NO_SOCKET = 1 << 5,	  /* a reset with no socket (addresses from skb) */
	EVF_PROVISIONAL = 1 << 6, /* reset_received that may be a local abort */
	EVF_LOCAL_ABORT = 1 << 7, /* data_after_close: cancels the provisional reset */
	EVF_LISTENER = 1 << 8,	  /* a reset sent by a listener (addresses from skb) */
	EVF_NO_STORAGE = 1 << 9,  /* socket storage could not be created: owner may be missing */
	EVF_NO_STACK = 1 << 10,	  /* the closer's user stack was asked for but not captured */
};

/* Reset reasons are counted by enum sk_rst_reason; the last slot counts unknown ones. */
enum reason_slot {
	REASON_UNKNOWN = 63,
	NR_REASONS,
};

#define NR_HIST 33

struct event {
	__u64 ts_ns;
	__u64 cookie;
	__u64 cgroup_id;
	__u32 unread_bytes;
	__u32 unsent_bytes;
	__u32 refused_bytes;
	__u32 netns;
	__u32 pid;
	__u32 tid;
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 reason; /* enum sk_rst_reason, or REASON_UNKNOWN */
	__u8 kind;    /* enum event_kind */
	__u8 state;
	__u16 flags; /* enum event_flag */
	__u8 laddr[16];
	__u8 raddr[16];
	char comm[16];	 /* the process: its thread-group leader's name */
	char thread[16]; /* the thread that acted on the socket */
	__u32 stack;	 /* the closer's user stack: its id in stacks plus one; 0: none */
};

struct counts {
	__u64 kinds[NR_KINDS];
	__u64 reasons[NR_REASONS];
	__u64 unread_bytes;
	__u64 unsent_bytes;
	__u64 refused_bytes;
	__u64 ring_lost;
	__u64 time_wait_refusals;   /* data_after_close answered by a TIME_WAIT mini-socket */
	__u64 unread_hist[NR_HIST]; /* bucket i: unread < 2^i */
	__u64 suppressed[NR_KINDS]; /* counted, not streamed: over the budget */
	__u64 suppressed_reasons[NR_REASONS]; /* the same, of reset_sent, by reason */
};

/* The options, set from Go before load; 0 means "no filter". */
struct config {
	__u64 wakeup_bytes; /* ring fill that wakes the reader; 0: never */
	__u32 filter_pid;
	__u32 filter_netns;
	/* Events of one kind this CPU may stream per second; 0: no budget. */
	__u32 budget_per_cpu;
	__u16 filter_port;
	__u8 filter_comm_len;
	bool stream_graceful;
	/* Capture the closing task's user stack for the closes that lose data or skip the drain. */
	bool capture_stacks;
	char filter_comm[16];
};

volatile const struct config cfg = {};

/* Names the enums in BTF, where bpf2go finds them; never read. */
struct contract {
	enum event_kind kind;
	enum event_flag flag;
	enum reason_slot reason;
} contract __attribute__((unused));

/* Socket-local flags. */
enum {
	SKF_OWNER = 1 << 0,
	SKF_CLASSIFIED = 1 << 1,    /* the final close was classified */
	SKF_RESET_PENDING = 1 << 2, /* a provisional reset_received was counted */
	SKF_INHERITED = 1 << 3,	    /* owner is the listener's: the first user replaces it */
	SKF_WAS_RESET = 1 << 4,	    /* tcp_reset() ran: a later close is not graceful */
	SKF_DESTROYED = 1 << 5,	    /* compat: destroyed, its entry waits for the reset due */
};

/* What emit() did with an event. */
enum {
	EMIT_FILTERED = 0,
	EMIT_COUNTED,
	EMIT_STREAMED,
};

struct owner {
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	char comm[16];
	char thread[16];
};

struct sk_info {
	struct owner owner;
	__u8 flags;
	__u8 abort_state;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
	__type(value, struct event);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counts);
} counters SEC(".maps");

#ifndef TCPCLOSE_COMPAT
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	/* BPF_F_CLONE: an accepted socket starts with its listener's owner. */
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sk_info);
} sk_info SEC(".maps");
#else
/* By the socket's address; least recently used entries go first when full. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sk_info);
} sk_info SEC(".maps");

struct listener_key {
	__u32 netns;
	__u32 port;
};

/*
 * Owners of listeners by netns and port, for the sockets they accept. A
 * later listener on the port replaces the entry; a port with no listener
 * accepts nothing, so an entry left behind is never read.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listener_key);
	__type(value, struct owner);
} listeners SEC(".maps");
#endif

/* Owners of undrained closes by cookie, for resets sent by TIME_WAIT mini-sockets. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct owner);
} tw_owner SEC(".maps");

/*
 * Where the kernel refuses trampolines (fentry), kprobes on tcp_sendmsg and
 * tcp_recvmsg stand in for the send and receive hooks. A kprobe cannot reach
 * socket storage: it leaves the first user of a socket here, by the
 * socket's address, and the hooks that read an owner take it from here when
 * the socket's own owner is unsettled (owner_of), then delete it; the
 * socket's destruction deletes what is left. Sized from Go: one entry
 * unless the kernel may need the kprobes; least recently used entries go
 * first when full.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, struct owner);
} probed_users SEC(".maps");

/* Set from Go once a kprobe on tcp_sendmsg or tcp_recvmsg is attached. */
__u32 users_probed = 0;

/*
 * Owners of sockets made before the tracer, by the socket's address, as the
 * iterator found them (learn_owners: it cannot reach a socket's storage),
 * with what names the connection: a later socket at the same address (the
 * old one freed) has another netns or other ports and is not taken for it.
 * Entries are never deleted, so nothing is done at each socket's end; the
 * map is read only for sockets whose storage has no owner, and only once
 * the iterator recorded some (old_known).
 */
struct old_owner {
	struct owner owner;
	__u32 netns;
	__u16 lport;
	__u16 rport;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct old_owner);
} old_owners SEC(".maps");

__u32 old_known = 0;

/*
 * Direct-mapped and shared by the CPUs: sockets whose owner is settled, so
 * that a send or receive on one needs no storage lookup and no helper call
 * (the verifier inlines an array's lookup), only a load and a compare. A
 * socket is known by its address less settled_base's (settled_key):
 * tracing programs may subtract pointers, not hash them. Its slot is
 * cleared when it is destroyed (on_destroy), before its memory can hold
 * another socket; a collision only evicts (a miss, answered from the
 * storage). A map of its own, not a global: user space writes the
 * globals, and a rewrite of the whole .bss could bring a cleared slot back.
 */
#define SETTLED_SLOTS 2048

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SETTLED_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} settled SEC(".maps");

/* Its own address, as a number, for the kprobes (settled_key_probed). */
__u64 settled_base = 0;

_Static_assert((NR_KINDS & (NR_KINDS - 1)) == 0, "NR_KINDS indexes by mask");
_Static_assert((NR_REASONS & (NR_REASONS - 1)) == 0, "NR_REASONS indexes by mask");

/*
 * User stacks of bad closes, deduplicated by the kernel; in build-id mode,
 * so that a frame of a file with a build id stays meaningful after the
 * process exits. Sized from Go: one entry unless stacks are captured.
 */
#define STACK_DEPTH 32

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, STACK_DEPTH * sizeof(struct bpf_stack_build_id));
	__uint(map_flags, BPF_F_STACK_BUILD_ID);
} stacks SEC(".maps");

/* Per CPU: the second the budget counts, and the events streamed in it by kind. */
struct budget {
	__u64 second;
	__u32 streamed[NR_KINDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct budget);
} budgets SEC(".maps");

/*
 * Who a storm is made of: suppressed events by kind, reason, remote address
 * and local port, read and cleared by the collector each second. Bounded:
 * the least recent sources make room (per-CPU LRU lists, no shared lock).
 */
struct storm_key {
	__u8 raddr[16];
	__u16 family;
	__u16 port; /* the local port of a reset sent, else the lower of the two */
	__u16 reason;
	__u8 kind;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct storm_key);
	__type(value, __u64);
} storm SEC(".maps");

/*
 * Per CPU: the cookie of the socket whose unread or zero-linger close was
 * classified last on this CPU. That close() sends the socket's reset next,
 * on the same CPU under the socket lock: send_reset knows it by the cookie,
 * without a storage lookup.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} reset_due SEC(".maps");

/*
 * Adds n to a per-CPU counter. Atomically: per-CPU data keeps other CPUs
 * out, not this one's softirq, which can interrupt a program running in
 * process context and run another of the programs (a different program is
 * not held back by the kernel's recursion check) on the same counters. A
 * plain ++ would then lose one of the two updates.
 */
static __always_inline void count(__u64 *counter, __s64 n)
{
	__sync_fetch_and_add(counter, n);
}

static __always_inline struct counts *get_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

/*
 * Names the process by task's thread-group leader (a JVM's closes are made
 * by threads named "http-nio-8080-e", its process is "java"); the thread's
 * own name stands in if the leader cannot be read. o->thread is set.
 */
static __always_inline void process_name(struct owner *o, struct task_struct *task)
{
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);

	if (!leader || bpf_core_read(o->comm, sizeof(o->comm), &leader->comm))
		__builtin_memcpy(o->comm, o->thread, sizeof(o->comm));
}

static __always_inline void owner_from_current(struct owner *o)
{
	__u64 id = bpf_get_current_pid_tgid();

	o->pid = id >> 32;
	o->tid = (__u32)id;
	o->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(o->thread, sizeof(o->thread));
	if (o->pid == o->tid) /* the leader itself: its name is the thread's */
		__builtin_memcpy(o->comm, o->thread, sizeof(o->comm));
	else
		process_name(o, (void *)bpf_get_current_task());
}

/*
 * The owner as task names it, for a socket found by the iterator: the
 * process (tgid, its leader's name), the thread and its cgroup v2 id.
 */
static __always_inline void owner_from_task(struct owner *o, struct task_struct *task)
{
	o->pid = BPF_CORE_READ(task, tgid);
	o->tid = BPF_CORE_READ(task, pid);
	o->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	bpf_core_read(o->thread, sizeof(o->thread), &task->comm);
	process_name(o, task);
}

static __always_inline struct sk_info *info_of(struct sock *sk, bool create)
{
#ifndef TCPCLOSE_COMPAT
	return bpf_sk_storage_get(&sk_info, sk, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
#else
	struct sk_info none = {};
	__u64 key = (__u64)sk;
	struct sk_info *info;

	info = bpf_map_lookup_elem(&sk_info, &key);
	if (info || !create)
		return info;
	bpf_map_update_elem(&sk_info, &key, &none, BPF_NOEXIST);
	return bpf_map_lookup_elem(&sk_info, &key);
#endif
}

/*
 * A new socket (connect, listen): compat drops what an earlier socket at
 * the same address may have left. Storage is born with its socket.
 */
static __always_inline void info_new(struct sock *sk)
{
#ifdef TCPCLOSE_COMPAT
	__u64 key = (__u64)sk;

	bpf_map_delete_elem(&sk_info, &key);
#endif
}

/*
 * A destroyed socket. Storage dies with its socket; compat deletes its
 * entry, unless a reset is still due on it: tcp_reset() destroys an orphan
 * before the kernel's reset for the same segment is sent, which then
 * deletes it (info_reset_sent).
 */
static __always_inline void info_gone(struct sock *sk)
{
#ifdef TCPCLOSE_COMPAT
	__u64 key = (__u64)sk;
	struct sk_info *info = bpf_map_lookup_elem(&sk_info, &key);

	if (info && (info->flags & SKF_RESET_PENDING)) {
		info->flags |= SKF_DESTROYED;
		return;
	}
	bpf_map_delete_elem(&sk_info, &key);
#endif
}

/* The reset due after tcp_reset() was sent: compat drops a destroyed socket's entry. */
static __always_inline void info_reset_sent(struct sock *sk, const struct sk_info *info)
{
#ifdef TCPCLOSE_COMPAT
	__u64 key = (__u64)sk;

	if (info->flags & SKF_DESTROYED)
		bpf_map_delete_elem(&sk_info, &key);
#endif
}

#ifdef TCPCLOSE_COMPAT
static __always_inline struct listener_key listener_of(struct sock *sk)
{
	struct listener_key k = {
	    .netns = sk->__sk_common.skc_net.net->ns.inum,
	    .port = sk->__sk_common.skc_num,
	};

	return k;
}
#endif

/* A listener's owner, for the sockets it accepts (BPF_F_CLONE does it with storage). */
static __always_inline void remember_listener(struct sock *sk, const struct sk_info *info)
{
#ifdef TCPCLOSE_COMPAT
	struct listener_key k = listener_of(sk);

	if (info)
		bpf_map_update_elem(&listeners, &k, &info->owner, BPF_ANY);
#endif
}

/*
 * A transition from LISTEN: a listener closed, or cloned into a new socket
 * (SYN_RECV), which starts with the listener's owner.
 */
static __always_inline void inherit_owner(struct sock *sk, int newstate)
{
#ifdef TCPCLOSE_COMPAT
	struct sk_info info = {.flags = SKF_OWNER | SKF_INHERITED};
	__u64 key = (__u64)sk;
	struct listener_key k;
	struct owner *o;

	if (newstate != TCP_SYN_RECV || sk->sk_protocol != IPPROTO_TCP)
		return;
	k = listener_of(sk);
	o = bpf_map_lookup_elem(&listeners, &k);
	if (!o) {
		bpf_map_delete_elem(&sk_info, &key);
		return;
	}
	info.owner = *o;
	bpf_map_update_elem(&sk_info, &key, &info, BPF_ANY);
#endif
}

/* The owner the iterator found for a socket made before the tracer, or NULL. */
static __always_inline struct owner *old_owner(struct sock *sk)
{
	const struct sock_common *skc = &sk->__sk_common;
	__u64 key = (__u64)sk;
	struct old_owner *o;

	if (!old_known)
		return NULL;
	o = bpf_map_lookup_elem(&old_owners, &key);
	if (!o || o->lport != skc->skc_num || o->rport != skc->skc_dport ||
	    o->netns != skc->skc_net.net->ns.inum)
		return NULL;
	return &o->owner;
}

/* Whether the socket's owner is unknown or inherited from its listener. */
static __always_inline bool owner_unsettled(const struct sk_info *info)
{
	return !(info->flags & SKF_OWNER) || (info->flags & SKF_INHERITED);
}

/*
 * The first user a kprobe recorded for the socket (probed_users), or NULL;
 * with storage, it becomes the socket's owner there and leaves the map.
 */
static __always_inline struct owner *probed_user(struct sock *sk, struct sk_info *info)
{
	__u64 key = (__u64)sk;
	struct owner *o = bpf_map_lookup_elem(&probed_users, &key);

	if (!o || !info)
		return o;
	info->owner = *o;
	info->flags = (info->flags & ~SKF_INHERITED) | SKF_OWNER;
	bpf_map_delete_elem(&probed_users, &key);
	return &info->owner;
}

/*
 * The socket's owner: the one recorded, its first user as a kprobe saw it
 * (where kprobes stand in for the send and receive hooks), or the one the
 * iterator found.
 */
static __always_inline struct owner *owner_of(struct sock *sk, struct sk_info *info)
{
	if (users_probed && (!info || owner_unsettled(info))) {
		struct owner *o = probed_user(sk, info);

		if (o)
			return o;
	}
	if (info && (info->flags & SKF_OWNER))
		return &info->owner;
	return old_owner(sk);
}

/*
 * The socket's cookie, generated on first use. Most sockets have one already
 * (connect, ESTABLISHED): a plain load then spares the helper call.
 */
static __always_inline __u64 cookie_of(struct sock *sk)
{
#ifndef TCPCLOSE_COMPAT
	__u64 cookie = sk->__sk_common.skc_cookie.counter;

	return cookie ? cookie : bpf_get_socket_cookie(sk);
#else
	return 0; /* fill_from_sock sets the event's identity */
#endif
}

/* A cookie made now (connect); compat has none. */
static __always_inline __u64 new_cookie(struct sock *sk)
{
#ifndef TCPCLOSE_COMPAT
	return bpf_get_socket_cookie(sk);
#else
	return 0;
#endif
}

/*
 * What reset_due holds for sk: its cookie (cookie, as the caller read it),
 * or in compat its address.
 */
static __always_inline __u64 due_key(struct sock *sk, __u64 cookie)
{
#ifndef TCPCLOSE_COMPAT
	return cookie;
#else
	return (__u64)sk;
#endif
}

#ifdef TCPCLOSE_COMPAT
/*
 * Compat's event identity: the connection's netns, family, addresses and
 * ports (FNV-1a over 32-bit words; never 0).
 */
static __always_inline __u64 fnv1a(__u64 h, __u32 word)
{
	return (h ^ word) * 0x100000001b3ULL;
}

static __always_inline __u64 tuple_id(const struct event *e)
{
	const __u32 *l = (const void *)e->laddr, *r = (const void *)e->raddr;
	__u64 h = 0xcbf29ce484222325ULL;

	h = fnv1a(h, e->netns);
	h = fnv1a(h, ((__u32)e->lport << 16) | e->rport);
	h = fnv1a(h, e->family);
	for (int i = 0; i < 4; i++)
		h = fnv1a(h, l[i]);
	for (int i = 0; i < 4; i++)
		h = fnv1a(h, r[i]);
	return h ? h : 1;
}
#endif

/*
 * The settled-cache key of sk: its address less settled_base's, never 0.
 * The verifier lets programs that may read kernel addresses subtract one
 * pointer from another, and nothing else.
 */
static __always_inline __u64 settled_key(const struct sock *sk)
{
	return (__u64)sk - (__u64)&settled_base;
}

/*
 * The slot of key in settled, or NULL where there is no cache (compat: its
 * state is a map by address, looked up anyway).
 */
static __always_inline __u64 *settled_slot(__u64 key)
{
#ifdef TCPCLOSE_COMPAT
	return NULL;
#endif
	/* Fibonacci hashing: the top bits of the product mix every bit of the key. */
	__u32 i = (key * 0x9E3779B97F4A7C15ULL) >> 53;

	return bpf_map_lookup_elem(&settled, &i);
}

static __always_inline void set_owner(struct event *e, const struct owner *o)
{
	e->pid = o->pid;
	e->tid = o->tid;
	e->cgroup_id = o->cgroup_id;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
	__builtin_memcpy(e->thread, o->thread, sizeof(e->thread));
	e->flags |= EVF_OWNER;
}

static __always_inline bool sock_flag_set(const struct sock *sk, int bit)
{
	return sk->__sk_common.skc_flags & (1UL << bit);
}

static __always_inline bool is_full_sock(int state)
{
	return state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV;
}

/*
 * The tcp_sock view of a full TCP socket. The tp_btf argument is typed
 * struct sock, whose bounds the verifier enforces on plain loads; the helper
 * returns a pointer typed tcp_sock (NULL for a mini-socket).
 */
static __always_inline struct tcp_sock *tcp_sk(struct sock *sk)
{
	return bpf_skc_to_tcp_sock(sk);
}

/* Bytes the application never read: rcv_nxt - copied_seq, less an in-order FIN. */
static __always_inline __u32 unread_bytes(const struct sock *sk, const struct tcp_sock *tp)
{
	__u32 n = tp->rcv_nxt - tp->copied_seq;

	if (n && sock_flag_set(sk, bpf_core_enum_value(enum sock_flags, SOCK_DONE)))
		n--;
	return n;
}

/*
 * Data bytes queued but not acknowledged: write_seq - snd_una, less our FIN.
 * The FIN takes a sequence number once shutdown() or close() queued it
 * (tcp_send_fin: write_seq++) and until the peer acks it: exactly while the
 * socket is in FIN_WAIT1, CLOSING or LAST_ACK (state is the one before the
 * transition being classified).
 */
static __always_inline __u32 unsent_bytes(const struct tcp_sock *tp, int state)
{
	__u32 n = tp->write_seq - tp->snd_una;

	if (n && (state == TCP_FIN_WAIT1 || state == TCP_CLOSING || state == TCP_LAST_ACK))
		n--;
	return n;
}

static __always_inline bool linger_zero(const struct sock *sk)
{
	return sock_flag_set(sk, bpf_core_enum_value(enum sock_flags, SOCK_LINGER)) &&
	       sk->sk_lingertime == 0;
}

static __always_inline void fill_from_sock(struct event *e, struct sock *sk)
{
	const struct sock_common *skc = &sk->__sk_common;
	struct tcp_sock *tp = NULL;

	e->family = skc->skc_family;
	e->state = skc->skc_state;
	e->lport = skc->skc_num;
	/*
	 * A full socket's skc_num is zeroed when the port is released (after
	 * the transition to CLOSE): inet_sport, in tcp_sock, keeps it.
	 */
	if (!e->lport && is_full_sock(e->state))
		tp = tcp_sk(sk);
	if (tp)
		e->lport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	e->rport = bpf_ntohs(skc->skc_dport);
	e->netns = skc->skc_net.net->ns.inum;
	if (e->family == AF_INET6) {
		__builtin_memcpy(e->laddr, skc->skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(e->raddr, skc->skc_v6_daddr.in6_u.u6_addr8, 16);
	} else {
		*(__be32 *)e->laddr = skc->skc_rcv_saddr;
		*(__be32 *)e->raddr = skc->skc_daddr;
	}
#ifdef TCPCLOSE_COMPAT
	e->cookie = tuple_id(e);
#endif
}

/*
 * fill_from_sock for a mini-socket (TIME_WAIT, request) a kprobe passed:
 * probe reads; the port is skc_num's, which a mini-socket keeps.
 */
static __always_inline void fill_from_mini(struct event *e, const struct sock *sk)
{
	const struct sock_common *skc = &sk->__sk_common;

	e->family = BPF_CORE_READ(skc, skc_family);
	e->state = BPF_CORE_READ(skc, skc_state);
	e->lport = BPF_CORE_READ(skc, skc_num);
	e->rport = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	e->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	e->cookie = BPF_CORE_READ(skc, skc_cookie.counter);
	if (e->family == AF_INET6) {
		bpf_core_read(e->laddr, 16, &skc->skc_v6_rcv_saddr);
		bpf_core_read(e->raddr, 16, &skc->skc_v6_daddr);
	} else {
		bpf_core_read(e->laddr, 4, &skc->skc_rcv_saddr);
		bpf_core_read(e->raddr, 4, &skc->skc_daddr);
	}
#ifdef TCPCLOSE_COMPAT
	e->cookie = tuple_id(e);
#endif
}

/*
 * Addresses of a reset sent with no socket, or by a listener: local is the
 * offending segment's destination. probed: skb came from a kprobe, whose
 * pointers are read with probe reads (a tracepoint's with plain loads).
 */
static __always_inline void fill_from_skb(struct event *e, const struct sk_buff *skb, bool probed)
{
	__u16 network_header, transport_header;
	struct tcphdr tcp = {};
	unsigned char *head;
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ip;

	if (probed) {
		head = BPF_CORE_READ(skb, head);
		network_header = BPF_CORE_READ(skb, network_header);
		transport_header = BPF_CORE_READ(skb, transport_header);
		e->netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	} else {
		head = skb->head;
		network_header = skb->network_header;
		transport_header = skb->transport_header;
		e->netns = skb->dev->nd_net.net->ns.inum;
	}
	/* An IPv4 header is followed by at least a TCP header: 40 bytes are there. */
	if (bpf_probe_read_kernel(&ip, sizeof(ip.v6), head + network_header))
		return;
	if ((ip.v4.ihl_version >> 4) == 6) {
		e->family = AF_INET6;
		__builtin_memcpy(e->laddr, ip.v6.daddr, 16);
		__builtin_memcpy(e->raddr, ip.v6.saddr, 16);
	} else {
		e->family = AF_INET;
		__builtin_memcpy(e->laddr, &ip.v4.daddr, 4);
		__builtin_memcpy(e->raddr, &ip.v4.saddr, 4);
	}
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + transport_header))
		return;
	e->lport = bpf_ntohs(tcp.dest);
	e->rport = bpf_ntohs(tcp.source);
}

/* Payload bytes of a received segment, from TCP_SKB_CB(skb); SYN and FIN excluded. */
static __always_inline __u32 payload_bytes(const struct sk_buff *skb, __u8 *tcp_flags)
{
	const struct tcp_skb_cb *cb = (const void *)skb->cb;
	__u32 len = BPF_CORE_READ(cb, end_seq) - BPF_CORE_READ(cb, seq);
	__u8 flags = BPF_CORE_READ(cb, tcp_flags);

	*tcp_flags = flags;
	if (flags & TCPHDR_FIN)
		len--;
	if (flags & TCPHDR_SYN)
		len--;
	return len;
}

static __always_inline bool wanted(const struct event *e)
{
	if (cfg.filter_netns && e->netns != cfg.filter_netns)
		return false;
	if (cfg.filter_port && e->lport != cfg.filter_port && e->rport != cfg.filter_port)
		return false;
	if (cfg.filter_pid && e->pid != cfg.filter_pid)
		return false;
	if (cfg.filter_comm_len) {
		for (int i = 0; i < 16; i++) {
			if (i >= cfg.filter_comm_len)
				break;
			if (e->comm[i] != cfg.filter_comm[i])
				return false;
		}
		if (cfg.filter_comm_len < 16 && e->comm[cfg.filter_comm_len] != 0)
			return false;
	}
	return true;
}

/* Whether an event's owner can matter to a filter (the options are constants). */
static __always_inline bool owner_filtered(void)
{
	return cfg.filter_pid || cfg.filter_comm_len;
}

static __always_inline bool any_filter(void)
{
	return cfg.filter_netns || cfg.filter_port || owner_filtered();
}

/*
 * Whether an event of kind needs its owner: a graceful close nobody asked
 * to see is only counted, so only an owner filter reads its owner.
 */
static __always_inline bool owner_needed(int kind)
{
	return kind != KIND_GRACEFUL_CLOSE || cfg.stream_graceful || owner_filtered();
}

/* Bits needed to write v (0 for 0): the histogram bucket, without a loop. */
static __always_inline __u32 log2_bucket(__u32 v)
{
	__u32 b = 0;

	if (v >> 16) {
		v >>= 16;
		b += 16;
	}
	if (v >> 8) {
		v >>= 8;
		b += 8;
	}
	if (v >> 4) {
		v >>= 4;
		b += 4;
	}
	if (v >> 2) {
		v >>= 2;
		b += 2;
	}
	if (v >> 1) {
		v >>= 1;
		b += 1;
	}
	return b + v;
}

/*
 * Counts the event when it passes the filters and streams it unless it is a
 * graceful close nobody asked for.
 */
/*
 * Whether the event fits this CPU's budget for its kind in the current
 * second. Some always do, because the collector joins them to what follows:
 * provisional resets and the data that cancels them (neither may go missing
 * alone), and undrained closes (each is remembered, for the story of the
 * data that may come after it; most are never shown).
 */
static __always_inline bool within_budget(const struct event *e, __u64 now)
{
	struct budget *b;
	__u64 second;
	__u32 zero = 0;

	if (!cfg.budget_per_cpu || e->kind >= NR_KINDS || e->kind == KIND_UNDRAINED_CLOSE ||
	    (e->flags & (EVF_PROVISIONAL | EVF_LOCAL_ABORT)))
		return true;
	b = bpf_map_lookup_elem(&budgets, &zero);
	if (!b)
		return true;
	second = now / 1000000000;
	if (b->second != second) {
		b->second = second;
		__builtin_memset(b->streamed, 0, sizeof(b->streamed));
	}
	/* NR_KINDS is a power of two: the mask shows the verifier the bound. */
	if (b->streamed[e->kind & (NR_KINDS - 1)] >= cfg.budget_per_cpu)
		return false;
	b->streamed[e->kind & (NR_KINDS - 1)]++;
	return true;
}

/* Counts a suppressed event, and its source in the storm table. */
static __always_inline void suppress(struct counts *c, const struct event *e)
{
	struct storm_key k = {.family = e->family, .reason = e->reason, .kind = e->kind};
	__u64 one = 1, *n;

	count(&c->suppressed[e->kind & (NR_KINDS - 1)], 1);
	if (e->kind == KIND_RESET_SENT)
		count(&c->suppressed_reasons[e->reason & (NR_REASONS - 1)], 1);
	/*
	 * The port that names the service: the one a reset sent answers for;
	 * else, of a client's ephemeral port and a server's, the lower (an
	 * ephemeral port per key would flood the table).
	 */
	k.port = e->kind == KIND_RESET_SENT || e->lport < e->rport ? e->lport : e->rport;
	__builtin_memcpy(k.raddr, e->raddr, sizeof(k.raddr));
	n = bpf_map_lookup_elem(&storm, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&storm, &k, &one, BPF_NOEXIST);
}

static __always_inline int emit(struct event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	struct counts *c;

	if (!wanted(e))
		return EMIT_FILTERED;
	c = get_counters();
	if (!c)
		return EMIT_FILTERED;
	if (e->kind < NR_KINDS)
		count(&c->kinds[e->kind], 1);
	if (e->unread_bytes)
		count(&c->unread_bytes, e->unread_bytes);
	if (e->unsent_bytes)
		count(&c->unsent_bytes, e->unsent_bytes);
	if (e->refused_bytes)
		count(&c->refused_bytes, e->refused_bytes);
	if (e->kind == KIND_UNREAD_CLOSE) {
		__u32 b = log2_bucket(e->unread_bytes);

		if (b < NR_HIST)
			count(&c->unread_hist[b], 1);
	}
	if (e->kind == KIND_GRACEFUL_CLOSE && !cfg.stream_graceful)
		return EMIT_COUNTED;
	e->ts_ns = bpf_ktime_get_boot_ns();
	if (!within_budget(e, e->ts_ns)) {
		suppress(c, e);
		return EMIT_COUNTED;
	}
	if (cfg.wakeup_bytes && bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg.wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, e, sizeof(*e), flags)) {
		count(&c->ring_lost, 1);
		return EMIT_COUNTED;
	}
	return EMIT_STREAMED;
}

/*
 * A graceful close nobody asked to see is only counted: its addresses are
 * needed only by the netns and port filters.
 */
static __always_inline bool needs_addresses(const struct event *e)
{
	return e->kind != KIND_GRACEFUL_CLOSE || cfg.stream_graceful || cfg.filter_netns ||
	       cfg.filter_port;
}

/*
 * Whether sk's file is being released: the transition or reset happens inside
 * the final close() (or exit) of the socket, not in shutdown() or softirq.
 * No tracepoint marks close(); the file's reference count does.
 */
static __always_inline bool in_final_close(const struct sock *sk)
{
	struct socket *sock;
	struct file *f;

	/*
	 * close() sets both shutdown bits first. Checked before the chase to
	 * the file: it spares the chase for shutdown() and most of softirq.
	 */
	if (sk->sk_shutdown != SHUTDOWN_MASK)
		return false;
	sock = sk->sk_socket;
	if (!sock)
		return false;
	f = sock->file;
	if (!f) /* a kernel socket */
		return true;
	if (bpf_core_field_exists(f->f_ref))
		return f->f_ref.refcnt.counter < 0;
	return ((struct file___old *)f)->f_count.counter == 0;
}

static __always_inline bool close_transition(int oldstate, int newstate)
{
	if (newstate == TCP_CLOSE)
		return true;
	if (oldstate == newstate) /* close() after shutdown(SHUT_WR) */
		return newstate == TCP_FIN_WAIT1 || newstate == TCP_FIN_WAIT2 ||
		       newstate == TCP_CLOSING || newstate == TCP_LAST_ACK;
	return (newstate == TCP_FIN_WAIT1 &&
		(oldstate == TCP_ESTABLISHED || oldstate == TCP_SYN_RECV)) ||
	       (newstate == TCP_LAST_ACK && oldstate == TCP_CLOSE_WAIT);
}

/* The current task becomes the socket's owner; how: flags to set with it. */
static __always_inline void become_owner(struct sk_info *info, __u8 how)
{
	owner_from_current(&info->owner);
	info->flags = (info->flags & ~SKF_INHERITED) | SKF_OWNER | how;
}

/*
 * The transition close() makes, under the socket lock: the kernel has just
 * chosen between reset (unread data), abort (zero linger) and FIN.
 */
static __always_inline void classify_close(void *ctx, struct sock *sk, int oldstate, int newstate)
{
	struct owner local = {};
	struct event e = {};
	struct sk_info *info;
	struct owner *owner;
	struct tcp_sock *tp;
	bool owner_used;
	bool peer_fin;

	peer_fin = sock_flag_set(sk, bpf_core_enum_value(enum sock_flags, SOCK_DONE)) ||
		   oldstate == TCP_CLOSE_WAIT || oldstate == TCP_CLOSING ||
		   oldstate == TCP_LAST_ACK;
	if (newstate == TCP_CLOSE) {
		tp = tcp_sk(sk);
		if (!tp)
			return;
		e.unread_bytes = unread_bytes(sk, tp);
		if (e.unread_bytes) {
			e.kind = KIND_UNREAD_CLOSE;
			e.unsent_bytes = unsent_bytes(tp, oldstate);
		} else if (linger_zero(sk)) {
			e.kind = KIND_ABORT_CLOSE;
			e.unsent_bytes = unsent_bytes(tp, oldstate);
		} else if (peer_fin) {
			e.kind = KIND_GRACEFUL_CLOSE;
		}
	} else {
		e.kind = peer_fin ? KIND_GRACEFUL_CLOSE : KIND_UNDRAINED_CLOSE;
	}

	owner_used = owner_needed(e.kind);
	info = info_of(sk, true);
	if (info) {
		if (info->flags & SKF_CLASSIFIED)
			return;
		info->flags |= SKF_CLASSIFIED;
		/*
		 * The closer becomes the owner of what follows the close
		 * (resets, data refused). A graceful close that is only
		 * counted keeps a real owner already known: nobody reads this
		 * event's, and fetching it (three helper calls) is most of the
		 * cost of the commonest close.
		 */
		if (owner_used || owner_unsettled(info))
			become_owner(info, 0);
		owner = &info->owner;
	} else {
		/*
		 * No storage (its allocation failed, e.g. the socket's option
		 * memory is at net.core.optmem_max): the close is still counted
		 * and streamed, with its owner (this is the closing task), and
		 * says that what follows on the socket may lack its owner.
		 */
		e.flags |= EVF_NO_STORAGE;
		if (owner_used)
			owner_from_current(&local);
		owner = &local;
	}
	if (e.kind == KIND_NONE)
		return; /* closed during connect: nothing to report */

	if (needs_addresses(&e)) {
		e.cookie = cookie_of(sk);
		fill_from_sock(&e, sk);
	}
	e.state = oldstate;
	if (peer_fin)
		e.flags |= EVF_PEER_FIN;
	if (oldstate == TCP_FIN_WAIT1 || oldstate == TCP_FIN_WAIT2)
		e.flags |= EVF_SHUT_WR;
	if (owner_used)
		set_owner(&e, owner);
	if (cfg.capture_stacks && e.kind != KIND_GRACEFUL_CLOSE) {
		/* close() runs in the closing task: its user stack is the call site. */
		long id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);

		if (id >= 0)
			e.stack = id + 1;
		else
			e.flags |= EVF_NO_STACK;
	}
	if (e.kind == KIND_UNDRAINED_CLOSE)
		bpf_map_update_elem(&tw_owner, &e.cookie, owner, BPF_ANY);
	if (e.kind == KIND_UNREAD_CLOSE || e.kind == KIND_ABORT_CLOSE) {
		__u32 zero = 0;
		__u64 *due = bpf_map_lookup_elem(&reset_due, &zero);

		if (due)
			*due = due_key(sk, e.cookie);
	}
	emit(&e);
}

/*
 * Records the current task as owner unless a real one is known already;
 * returns the socket's storage, NULL if it could not be created.
 */
static __always_inline struct sk_info *record_owner(struct sock *sk, __u8 how)
{
	struct sk_info *info = info_of(sk, true);

	if (info && owner_unsettled(info))
		become_owner(info, how);
	return info;
}

/*
 * On send and receive: the first task that uses a socket whose owner is
 * unknown or inherited from its listener becomes its owner. Most calls are
 * on sockets already settled, answered from the settled cache.
 */
static __always_inline void record_user(struct sock *sk)
{
	__u64 key = settled_key(sk);
	__u64 *slot = settled_slot(key);

	if (slot && *slot == key)
		return;
	/* Made at connect or ESTABLISHED; now for a socket older than the tracer. */
	cookie_of(sk);
	if (record_owner(sk, 0) && slot)
		*slot = key;
}

/*
 * Runs on every state change of the host (about ten per TCP connection).
 * The states, arguments, decide first: most transitions need nothing, not
 * even a load from sk (another cache line for each run).
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, struct sock *sk, int oldstate, int newstate)
{
	if (newstate == TCP_SYN_SENT) {
		struct sk_info *info;
		__u64 key;
		__u64 *slot;

		if (sk->sk_protocol != IPPROTO_TCP)
			return 0;
		/*
		 * connect(): process context, the owner is the caller, and
		 * settled: the caller's sends and receives skip the storage.
		 */
		info_new(sk);
		info = record_owner(sk, 0);
		new_cookie(sk);
		key = settled_key(sk);
		slot = settled_slot(key);
		if (info && slot)
			*slot = key;
		return 0;
	}
	if (newstate == TCP_LISTEN) {
		/* listen(): accepted sockets inherit this owner (BPF_F_CLONE). */
		if (sk->sk_protocol == IPPROTO_TCP) {
			info_new(sk);
			remember_listener(sk, record_owner(sk, SKF_INHERITED));
		}
		return 0;
	}
	if (newstate == TCP_ESTABLISHED) {
		/*
		 * The cookie, so a TIME_WAIT mini-socket inherits it. connect()
		 * made it already on the active side.
		 */
		if (oldstate != TCP_SYN_SENT && sk->sk_protocol == IPPROTO_TCP)
			cookie_of(sk);
		return 0;
	}
	if (oldstate == TCP_LISTEN) {
		inherit_owner(sk, newstate);
		return 0;
	}
	if (!close_transition(oldstate, newstate))
		return 0;
	if (sk->sk_protocol != IPPROTO_TCP || !in_final_close(sk))
		return 0;
	classify_close(ctx, sk, oldstate, newstate);
	return 0;
}

/*
 * accept() has no tracepoint: an accepted socket starts with the owner of
 * its listener, replaced by the first task that sends or receives on it.
 */
SEC("tp_btf/sock_send_length")
int BPF_PROG(on_send_length, struct sock *sk)
{
	if (sk->sk_protocol == IPPROTO_TCP)
		record_user(sk);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(on_recv_length, struct sock *sk)
{
	if (sk->sk_protocol == IPPROTO_TCP)
		record_user(sk);
	return 0;
}

/* Before 6.3 (no sock_send_length/sock_recv_length): the same, on entry to TCP's own calls. */
SEC("fentry/tcp_sendmsg")
int BPF_PROG(on_tcp_sendmsg, struct sock *sk)
{
	record_user(sk);
	return 0;
}

SEC("fentry/tcp_recvmsg")
int BPF_PROG(on_tcp_recvmsg, struct sock *sk)
{
	record_user(sk);
	return 0;
}

/*
 * tcp_reset() runs for a received RST, but also when the kernel aborts on
 * data that arrived after shutdown (TCPAbortOnData) - then tcp_send_reset
 * follows at once on the same socket. Where the state allows the latter,
 * the event is provisional: the data_after_close that follows cancels it,
 * in the counters here and in the stream in the collector.
 */
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_receive_reset, struct sock *sk)
{
	struct event e = {.kind = KIND_RESET_RECEIVED};
	int state = sk->__sk_common.skc_state;
	struct sk_info *info;
	struct owner *owner;
	bool provisional;

	if (state == TCP_CLOSE)
		return 0; /* tcp_reset() ignores it */
	provisional = (sk->sk_shutdown & RCV_SHUTDOWN) &&
		      (state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING ||
		       state == TCP_LAST_ACK || state == TCP_CLOSE_WAIT);
	info = info_of(sk, true);
	if (info)
		info->flags |= SKF_WAS_RESET;
	else
		e.flags |= EVF_NO_STORAGE;
	e.cookie = cookie_of(sk);
	fill_from_sock(&e, sk);
	if (provisional)
		e.flags |= EVF_PROVISIONAL;
	owner = owner_of(sk, info);
	if (owner)
		set_owner(&e, owner);
	if (emit(&e) != EMIT_FILTERED && provisional && info) {
		info->flags |= SKF_RESET_PENDING;
		info->abort_state = state;
	}
	return 0;
}

static __always_inline void count_reason(__u16 reason)
{
	struct counts *c = get_counters();

	if (c)
		count(&c->reasons[reason < NR_REASONS ? reason : REASON_UNKNOWN], 1);
}

/* Undo the count of a provisional reset_received: it was a local abort. */
static __always_inline void uncount_reset_received(void)
{
	struct counts *c = get_counters();

	if (c)
		count(&c->kinds[KIND_RESET_RECEIVED], -1);
}

/*
 * Whether a reset that answers a segment is the kernel's abort on data after
 * close (TCPAbortOnData): where the kernel names reasons, the name must agree.
 */
static __always_inline bool abort_on_data_reason(struct sk_buff *skb, __u16 reason, bool has_reason)
{
	if (!skb)
		return false;
	if (!has_reason)
		return true;
	if (!bpf_core_enum_value_exists(enum sk_rst_reason, SK_RST_REASON_TCP_ABORT_ON_DATA))
		return false;
	return reason == bpf_core_enum_value(enum sk_rst_reason, SK_RST_REASON_TCP_ABORT_ON_DATA);
}

/*
 * Every RST this host sends. has_reason: the kernel passed an enum
 * sk_rst_reason (6.10+); before that the reason is unknown, never guessed.
 * probed: a kprobe passed sk and skb (probe reads, no storage), and sk is
 * a mini-socket or NULL: what only full sockets need is left out.
 */
static __always_inline int send_reset(struct sock *sk, struct sk_buff *skb, __u16 reason,
				      bool has_reason, bool probed)
{
	struct event e = {.kind = KIND_RESET_SENT, .reason = REASON_UNKNOWN};
	struct sk_info *info = NULL;
	bool abort_on_data = false;
	struct counts *c;
	__u8 tcp_flags = 0;

	if (has_reason) {
		e.reason = reason;
		e.flags |= EVF_REASON;
	}
	/*
	 * The reset of the unread or zero-linger close just classified, the
	 * commonest with a socket: part of that event, only its reason is
	 * counted. With no filter to apply it needs no addresses, owner or
	 * storage.
	 */
	if (!probed && !any_filter() && sk) {
		__u64 cookie = due_key(sk, sk->__sk_common.skc_cookie.counter);
		__u32 zero = 0;
		__u64 *due = bpf_map_lookup_elem(&reset_due, &zero);

		if (due && cookie && *due == cookie) {
			*due = 0;
			count_reason(e.reason);
			return 0;
		}
	}
	if (!sk) {
		if (!skb)
			return 0;
		fill_from_skb(&e, skb, probed);
		e.flags |= EVF_NO_SOCKET;
	} else if (probed) {
		fill_from_mini(&e, sk);
	} else {
		e.cookie = sk->__sk_common.skc_cookie.counter;
		fill_from_sock(&e, sk);
		if (e.state == TCP_LISTEN && skb) {
			/*
			 * A listener answers a segment of a connection it does
			 * not have (reason TCP_FLAGS), e.g. one still in flight
			 * after the connection's socket aborted. Its own
			 * addresses are the wildcard: the segment's are the
			 * connection's.
			 */
			__u32 netns = e.netns;

			fill_from_skb(&e, skb, false);
			/* The segment's device is no longer set here: the socket's netns. */
			e.netns = netns;
			e.flags |= EVF_LISTENER;
		}
		if (is_full_sock(e.state)) {
			struct owner *owner;

			info = info_of(sk, false);
			owner = owner_of(sk, info);
			if (owner)
				set_owner(&e, owner);
		}
	}
	if (!wanted(&e))
		return 0;
	count_reason(e.reason);

	if (info && (info->flags & SKF_RESET_PENDING)) {
		/*
		 * tcp_reset() ran on this socket, and now it answers a segment:
		 * a received RST is never answered, so this is the kernel
		 * aborting on data after shutdown (TCPAbortOnData).
		 */
		abort_on_data = abort_on_data_reason(skb, reason, has_reason);
		info->flags &= ~SKF_RESET_PENDING;
		if (abort_on_data) {
			/* FIN_WAIT path: data after shutdown, TCPAbortOnData. */
			uncount_reset_received();
			e.state = info->abort_state;
			e.flags |= EVF_LOCAL_ABORT;
		}
		info_reset_sent(sk, info);
	} else if (!probed && sk && e.state == TCP_CLOSE && skb &&
		   !(info && (info->flags & SKF_WAS_RESET))) {
		/*
		 * A full socket already closed answers a segment, and tcp_reset()
		 * did not run on it: tcp_rcv_state_process() has just called
		 * tcp_done() and returned non-zero, which only its FIN_WAIT1 branch
		 * does that way. The orphan's FIN was acked by a segment that
		 * carries new data (or by any segment, with TCP_LINGER2 < 0):
		 * TCPAbortOnData, and no tcp_receive_reset. 6.1 names no reason;
		 * the socket state and the segment are the evidence.
		 */
		abort_on_data = abort_on_data_reason(skb, reason, has_reason);
		if (abort_on_data)
			e.state = TCP_FIN_WAIT1;
	}
	if (abort_on_data) {
		e.kind = KIND_DATA_AFTER_CLOSE;
		e.refused_bytes = payload_bytes(skb, &tcp_flags);
	} else if (sk && e.state == TCP_TIME_WAIT && skb) {
		const struct inet_timewait_sock *tw = (const void *)sk;
		__u32 refused = payload_bytes(skb, &tcp_flags);

		e.flags |= EVF_TIME_WAIT;
		/* Not a plain load: the verifier bounds sk by struct sock. */
		if (BPF_CORE_READ(tw, tw_substate) == TCP_FIN_WAIT2 && refused &&
		    !(tcp_flags & TCPHDR_SYN)) {
			/* TIME_WAIT path: data after an orphan FIN_WAIT2 became a mini-socket. */
			struct owner *o = bpf_map_lookup_elem(&tw_owner, &e.cookie);

			e.kind = KIND_DATA_AFTER_CLOSE;
			e.state = TCP_FIN_WAIT2;
			e.refused_bytes = refused;
			if (o)
				set_owner(&e, o);
			c = get_counters();
			if (c)
				count(&c->time_wait_refusals, 1);
		}
	} else if (!probed && sk && is_full_sock(e.state) && in_final_close(sk)) {
		/*
		 * The reset of an unread or zero-linger close: part of that
		 * event (also when the socket has no storage).
		 */
		return 0;
	}
	emit(&e);
	return 0;
}

/* From 6.10 every RST passes here, with its reason; before, only those of full sockets. */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(on_send_reset, struct sock *sk, struct sk_buff *skb)
{
	/* The third argument, enum sk_rst_reason, exists from 6.10 on. */
	if (bpf_core_type_exists(enum sk_rst_reason))
		return send_reset(sk, skb, (__u16)ctx[2], true, false);
	return send_reset(sk, skb, 0, false, false);
}

/*
 * Before 6.10 tcp_send_reset is silent for TIME_WAIT mini-sockets, request
 * sockets and segments with no socket: these take their resets here. Loaded
 * only on such kernels; full sockets are left to the tracepoint.
 */
static __always_inline int send_reset_not_full(struct sock *sk, struct sk_buff *skb, bool probed)
{
	unsigned char *segment = NULL;
	__u8 tcp_flags = 0;
	int state;

	if (sk) {
		state =
		    probed ? BPF_CORE_READ(sk, __sk_common.skc_state) : sk->__sk_common.skc_state;
		if (is_full_sock(state))
			return 0;
	}
	/*
	 * The function is entered for a reset arriving with no socket too,
	 * and returns at once: a reset is never answered.
	 */
	if (skb && probed)
		segment = BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, transport_header);
	else if (skb)
		segment = skb->head + skb->transport_header;
	if (segment && !bpf_probe_read_kernel(&tcp_flags, sizeof(tcp_flags), segment + 13) &&
	    (tcp_flags & TCPHDR_RST))
		return 0;
	return send_reset(sk, skb, 0, false, probed);
}

SEC("fentry/tcp_v4_send_reset")
int BPF_PROG(on_v4_send_reset, struct sock *sk, struct sk_buff *skb)
{
	return send_reset_not_full(sk, skb, false);
}

SEC("fentry/tcp_v6_send_reset")
int BPF_PROG(on_v6_send_reset, struct sock *sk, struct sk_buff *skb)
{
	return send_reset_not_full(sk, skb, false);
}

/*
 * The argument n (0 or 1) of a kprobe's function, from the registers as
 * the running kernel's architecture names them (x86-64 or arm64; CO-RE
 * leaves the other branch dead). On another architecture the program does
 * not load, and the tracer says what is lost.
 */
static __always_inline __u64 kprobe_arg(void *ctx, int n)
{
	__u64 v;

	/*
	 * The context is read with plain loads at relocated offsets; the
	 * barriers keep the compiler from merging the two loads into one from
	 * a computed address, which the verifier refuses for a context.
	 */
	if (bpf_core_field_exists(((struct pt_regs___arm64 *)0)->regs)) {
		v = n ? ((struct pt_regs___arm64 *)ctx)->regs[1]
		      : ((struct pt_regs___arm64 *)ctx)->regs[0];
		barrier_var(v);
	} else {
		v = n ? ((struct pt_regs___x86 *)ctx)->si : ((struct pt_regs___x86 *)ctx)->di;
		barrier_var(v);
	}
	return v;
}

/*
 * settled_key for a kprobe, whose socket is a number (a pointer subtracted
 * from a number is refused): settled_base's address is read once. 0 if it
 * cannot be.
 */
static __always_inline __u64 settled_key_probed(__u64 sk)
{
	__u64 base = settled_base;

	if (!base) {
		void *p = &settled_base;

		if (bpf_probe_read_kernel(&base, sizeof(base), &p) || !base)
			return 0;
		settled_base = base;
	}
	return sk - base;
}

/*
 * Where the kernel refuses trampolines (arm64 before 6.0, or without ftrace
 * direct calls), kprobes on the same functions stand in for the four fentry
 * programs; the collector attaches one only where the fentry program was
 * refused. A kprobe reads the arguments with probe reads and cannot reach
 * socket storage: the user of a socket goes to probed_users (record_user
 * does the rest from the storage's side), and resets take send_reset's
 * paths that need no storage, which are the only ones here (mini-sockets
 * and no socket).
 */
static __always_inline void record_user_probed(struct sock *sk)
{
	__u64 key = (__u64)sk;
	__u64 skey = settled_key_probed(key);
	__u64 *slot = skey ? settled_slot(skey) : NULL;
	struct owner o;

	if (slot && *slot == skey)
		return;
	if (!bpf_map_lookup_elem(&probed_users, &key)) {
		owner_from_current(&o);
		if (bpf_map_update_elem(&probed_users, &key, &o, BPF_NOEXIST))
			return;
	}
	if (slot)
		*slot = skey;
}

SEC("kprobe/tcp_sendmsg")
int kp_tcp_sendmsg(void *ctx)
{
	record_user_probed((struct sock *)kprobe_arg(ctx, 0));
	return 0;
}

SEC("kprobe/tcp_recvmsg")
int kp_tcp_recvmsg(void *ctx)
{
	record_user_probed((struct sock *)kprobe_arg(ctx, 0));
	return 0;
}

SEC("kprobe/tcp_v4_send_reset")
int kp_v4_send_reset(void *ctx)
{
	return send_reset_not_full((struct sock *)kprobe_arg(ctx, 0),
				   (struct sk_buff *)kprobe_arg(ctx, 1), true);
}

SEC("kprobe/tcp_v6_send_reset")
int kp_v6_send_reset(void *ctx)
{
	return send_reset_not_full((struct sock *)kprobe_arg(ctx, 0),
				   (struct sk_buff *)kprobe_arg(ctx, 1), true);
}

/*
 * close() of a socket already in CLOSE makes no transition: the kernel
 * destroys it at once, in the closing task. If the peer's FIN had arrived
 * (shutdown(SHUT_WR), drain, close), that was a graceful close.
 */
static __always_inline void classify_dead_close(struct sock *sk)
{
	struct event e = {.kind = KIND_GRACEFUL_CLOSE, .flags = EVF_PEER_FIN};
	struct owner o;

	/* Nothing follows a destroy: the owner matters only to a stream or a filter. */
	if (owner_needed(e.kind)) {
		owner_from_current(&o);
		set_owner(&e, &o);
	}
	if (needs_addresses(&e)) {
		e.cookie = cookie_of(sk);
		fill_from_sock(&e, sk);
	}
	emit(&e);
}

/*
 * Nothing is streamed for the destruction itself: the collector keeps state
 * only for undrained closes, which outlive their socket (TIME_WAIT) and age out.
 */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(on_destroy, struct sock *sk)
{
	__u64 key = settled_key(sk);
	__u64 *slot = settled_slot(key);
	struct sk_info *info;

	if (slot && *slot == key)
		*slot = 0; /* before the memory can hold another socket */

	if (sk->__sk_common.skc_state == TCP_CLOSE &&
	    sock_flag_set(sk, bpf_core_enum_value(enum sock_flags, SOCK_DONE))) {
		info = info_of(sk, false);
		if (!info || !(info->flags & (SKF_CLASSIFIED | SKF_WAS_RESET)))
			classify_dead_close(sk);
	}
	if (users_probed) {
		__u64 key = (__u64)sk;

		bpf_map_delete_elem(&probed_users, &key);
	}
	info_gone(sk);
	return 0;
}

/*
 * The socket of a file, NULL if it is not one. Compat (no bpf_sock_from_file
 * before 5.11): a socket's inode is S_IFSOCK and its file's private_data is
 * the socket.
 */
static __always_inline struct socket *socket_of(struct file *file)
{
#ifndef TCPCLOSE_COMPAT
	return bpf_sock_from_file(file);
#else
	struct file___sockfs *f = (void *)file;

	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	return BPF_CORE_READ(f, private_data);
#endif
}

/*
 * Run once at start, after the hooks are attached: every open file of every
 * process (threads that share their leader's files are skipped by the
 * kernel). Every TCP socket is recorded; one with no owner in its storage
 * was made before the tracer, and the first process found holding it is
 * its owner until a task sends, receives or closes on it (a listener shared
 * by pre-forked workers is the first one's). The socket's storage is out of
 * reach here (the kernel does not trust a socket reached from a file), so
 * the owner goes to old_owners by the socket's address, which the hooks can
 * read. One byte is written per socket: 1 if its owner was recorded, 0 if
 * the table was full.
 */
SEC("iter/task_file")
int learn_owners(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct old_owner o = {};
	struct socket *sock;
	struct sock *sk;
	__u8 done = 1;
	__u64 key;

	if (!task || !file)
		return 0;
	sock = socket_of(file);
	if (!sock)
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	switch (BPF_CORE_READ(sk, __sk_common.skc_family)) {
	case AF_INET:
	case AF_INET6:
		break;
	default:
		return 0;
	}
	key = (__u64)sk;
	if (bpf_map_lookup_elem(&old_owners, &key))
		return 0; /* another process holds it too: the first one found owns it */
	owner_from_task(&o.owner, task);
	o.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	o.lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	o.rport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	if (bpf_map_update_elem(&old_owners, &key, &o, BPF_NOEXIST) == 0)
		old_known = 1;
	else
		done = 0;
	bpf_seq_write(ctx->meta->seq, &done, sizeof(done));
	return 0;
}
