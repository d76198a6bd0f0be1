/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * Minimal CO-RE views of the kernel types tcpclose.c reads. Only the fields
 * used are declared; preserve_access_index lets libbpf relocate them against
 * the running kernel's BTF, so no vmlinux.h is needed.
 */
#ifndef TCPCLOSE_KERNEL_H
#define TCPCLOSE_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum; /* bpf_helper_defs.h */
typedef _Bool bool;
#define true 1
#define false 0

/* The few UAPI constants used (include/uapi/linux/bpf.h), stable ABI. */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_STACK_TRACE = 7,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_RINGBUF = 27,
};
#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_F_NO_PREALLOC (1U << 0)
#define BPF_F_NO_COMMON_LRU (1U << 1)
#define BPF_F_STACK_BUILD_ID (1U << 5)
#define BPF_F_CLONE (1U << 9)
#define BPF_F_USER_STACK (1ULL << 8)
#define BPF_LOCAL_STORAGE_GET_F_CREATE (1ULL << 0)
#define BPF_RB_NO_WAKEUP (1ULL << 0)
#define BPF_RB_FORCE_WAKEUP (1ULL << 1)
#define BPF_RB_AVAIL_DATA 0

/* A frame of a stack map in build-id mode (include/uapi/linux/bpf.h). */
struct bpf_stack_build_id {
	__s32 status; /* 0 empty, 1 build id and offset, 2 ip only */
	unsigned char build_id[20];
	union {
		__u64 offset;
		__u64 ip;
	};
};

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

#define TCPHDR_FIN 0x01
#define TCPHDR_SYN 0x02
#define TCPHDR_RST 0x04

/* Socket states (include/net/tcp_states.h), stable kernel ABI. */
enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT,
	TCP_SYN_RECV,
	TCP_FIN_WAIT1,
	TCP_FIN_WAIT2,
	TCP_TIME_WAIT,
	TCP_CLOSE,
	TCP_CLOSE_WAIT,
	TCP_LAST_ACK,
	TCP_LISTEN,
	TCP_CLOSING,
	TCP_NEW_SYN_RECV,
};

#define RCV_SHUTDOWN 1
#define SHUTDOWN_MASK 3

/* Values are relocated by name against the running kernel. */
enum sock_flags {
	SOCK_DONE = 1,
	SOCK_LINGER = 4,
};

enum sk_rst_reason {
	SK_RST_REASON_TCP_ABORT_ON_DATA = 8,
};

struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
} __attribute__((preserve_access_index));

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

typedef struct {
	long counter;
} atomic_long_t;

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	atomic_long_t skc_cookie;
	unsigned long skc_flags;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	struct socket *sk_socket;
	__u16 sk_protocol;
	__u8 sk_shutdown;
	unsigned long sk_lingertime;
} __attribute__((preserve_access_index));

struct inet_sock {
	__be16 inet_sport;
} __attribute__((preserve_access_index));

struct inet_connection_sock {
	struct inet_sock icsk_inet;
} __attribute__((preserve_access_index));

struct tcp_sock {
	struct inet_connection_sock inet_conn;
	__u32 rcv_nxt;
	__u32 copied_seq;
	__u32 write_seq;
	__u32 snd_una;
} __attribute__((preserve_access_index));

struct inet_timewait_sock {
	unsigned char tw_substate;
} __attribute__((preserve_access_index));

/* 6.13+: file_ref_t f_ref, negative once the last reference is gone. */
struct file {
	struct {
		atomic_long_t refcnt;
	} f_ref;
} __attribute__((preserve_access_index));

/* Before 6.13: atomic_long_t f_count, zero once the last reference is gone. */
struct file___old {
	atomic_long_t f_count;
} __attribute__((preserve_access_index));

/* Where a file's socket is, for kernels without bpf_sock_from_file (5.11). */
#define S_IFMT 00170000
#define S_IFSOCK 0140000

struct inode {
	unsigned short i_mode;
} __attribute__((preserve_access_index));

struct file___sockfs {
	struct inode *f_inode;
	void *private_data;
} __attribute__((preserve_access_index));

struct kernfs_node {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct css_set {
	struct cgroup *dfl_cgrp;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *group_leader;
	struct css_set *cgroups;
	char comm[16];
} __attribute__((preserve_access_index));

/* The context of an iter/task_file program (its fields are unions in the kernel). */
struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	__u32 fd;
	struct file *file;
} __attribute__((preserve_access_index));

struct socket {
	struct file *file;
	struct sock *sk;
} __attribute__((preserve_access_index));

/*
 * A kprobe's context, the registers of the probed call, as each
 * architecture names them; CO-RE tells which one the running kernel has.
 * x86-64 passes the first two arguments in di and si, arm64 in regs[0] and
 * regs[1] (in an anonymous member of its struct pt_regs).
 */
struct pt_regs___x86 {
	unsigned long di;
	unsigned long si;
} __attribute__((preserve_access_index));

struct pt_regs___arm64 {
	__u64 regs[31];
} __attribute__((preserve_access_index));

struct net_device {
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	char cb[48];
	unsigned char *head;
	__u16 transport_header;
	__u16 network_header;
} __attribute__((preserve_access_index));

/* The start of TCP_SKB_CB(skb); tcp_flags is u8 before 6.9, u16 after. */
struct tcp_skb_cb {
	__u32 seq;
	__u32 end_seq;
	__u8 tcp_flags;
} __attribute__((preserve_access_index));

struct iphdr {
	__u8 ihl_version;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6hdr {
	__u8 priority_version;
	__u8 flow_lbl[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct tcphdr {
	__be16 source;
	__be16 dest;
};

#endif
