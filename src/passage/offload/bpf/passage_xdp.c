// SPDX-License-Identifier: Apache-2.0
/*
 * Passage's kernel fast path for TURN channels (RFC 8656 §12) whose client and
 * peer are both on UDP. See docs/offload.md.
 *
 * Client -> peer: a ChannelData message arriving at a listening address from a
 * client's 5-tuple, on a bound channel, loses its 4-byte header and leaves from
 * the relayed address to the peer.
 * Peer -> client: a datagram arriving at a relayed address from a bound peer
 * gains a ChannelData header and leaves from the listening address to the client.
 *
 * Everything else, and anything this program is unsure of, is XDP_PASS: the
 * userspace relay sees it exactly as it would without this program. The control
 * plane (passage.offload) owns every map entry; this program only reads them,
 * counts bytes per channel and learns which MAC address answers for an IP
 * (from the packets it forwards: the packet being answered).
 *
 * Built against the UAPI headers and libbpf's bpf_helpers.h only: no BTF, no
 * CO-RE, since it touches nothing but packet bytes and its own maps. The map
 * layouts below are mirrored byte for byte by passage/offload/maps.py.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ACTION_STRIP 1 /* client -> peer: remove the ChannelData header */
#define ACTION_WRAP 2  /* peer -> client: add a ChannelData header */

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define TTL 64          /* what the host stack would send with (net.ipv4.ip_default_ttl) */
#define MAX_FRAME 16384 /* bounds for the verifier; bigger frames are passed */
#define LEARN_EVERY 64  /* packets of a channel's direction per CPU between two learnings */

/* Outcomes, counted per CPU in the "outcomes" map (passage/offload/maps.py: Outcome). */
enum outcome {
	OUT_NOT_UDP = 0,      /* not IPv4/IPv6 UDP: passed */
	OUT_NO_FLOW = 1,      /* UDP but no channel entry: passed */
	OUT_NO_NEIGHBOUR = 2, /* entry, but no MAC known for the destination yet: passed */
	OUT_IRREGULAR = 3,    /* options, fragments, lengths or padding we leave to userspace: passed */
	OUT_TOO_BIG = 4,      /* would exceed the outgoing MTU: passed */
	OUT_TX = 5,           /* forwarded out of the interface it came in on */
	OUT_REDIRECT = 6,     /* forwarded out of another interface */
	OUT_ABORTED = 7,      /* a helper failed after the packet was changed: dropped */
	OUT_BAD_CHECKSUM = 8, /* the UDP checksum does not hold (or is left for offload): passed */
	OUT_COUNT = 9,
};

struct flow_key {
	__u8 remote_ip[16]; /* IPv4 as ::ffff:a.b.c.d */
	__u8 local_ip[16];
	__be16 remote_port;
	__be16 local_port;
	__be16 channel; /* client side: the channel number; peer side: 0 */
	__u16 zero;
};

struct flow {
	__u8 src_ip[16]; /* the packet leaves from here ... */
	__u8 dst_ip[16]; /* ... to here */
	__be16 src_port;
	__be16 dst_port;
	__be16 channel; /* ACTION_WRAP: the channel number to put in front */
	__u8 action;
	__u8 zero;
	__u32 slot; /* index of this channel's meter */
};

struct neighbour {
	__u32 ifindex;      /* where the IP is reached */
	__u16 mtu;          /* that interface's MTU: the largest IP packet it sends */
	__u8 local_mac[6];  /* our MAC on that interface */
	__u8 remote_mac[6]; /* the next hop's MAC */
	__u16 zero;
};

struct interface {
	__u32 mtu;
};

struct meter {
	__u64 bytes_to_peer;
	__u64 packets_to_peer;
	__u64 bytes_from_peer;
	__u64 packets_from_peer;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, struct flow_key);
	__type(value, struct flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u8[16]);
	__type(value, struct neighbour);
} neighbours SEC(".maps");

/* The interfaces the program is attached to, by ifindex: what a learned neighbour inherits. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct interface);
} interfaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct meter);
} meters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OUT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} outcomes SEC(".maps");

/* The UDP checksum (RFC 768) of one datagram is the sum of these fields, the
 * ChannelData header where there is one, the padding and the relayed data.
 * IPv4 addresses are written v4-mapped: ::ffff: adds 0xffff, which is zero in
 * ones' complement, so one layout serves both families (RFC 8200 §8.1's
 * pseudo-header sums to the same 16-bit words as RFC 768's). */
struct csum_fields {
	__u8 src[16];
	__u8 dst[16];
	__be16 protocol; /* pseudo-header: zero and the protocol number */
	__be16 length;   /* pseudo-header: the UDP length */
	__be16 src_port;
	__be16 dst_port;
	__be16 udp_length;
	__be16 check;
	__be16 channel; /* the ChannelData header, where there is one */
	__be16 channel_length;
	__u8 tail[4]; /* padding bytes after the data, in their 4-byte word */
};

struct parsed {
	struct flow_key key;
	__u32 l3_len;   /* bytes of the IP header */
	__u32 payload;  /* offset of the UDP payload from the frame start */
	__u32 udp_len;  /* the UDP length field: header and payload */
	__be16 udp_check;
	__be16 ip_id;
	__u8 v4;
};

static __always_inline int count(__u32 what, int verdict)
{
	__u64 *n = bpf_map_lookup_elem(&outcomes, &what);
	if (n)
		*n += 1;
	return verdict;
}

static __always_inline int is_v4_mapped(const __u8 *ip)
{
	const __u32 *w = (const __u32 *)ip;
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

static __always_inline void map_v4(__u8 *out, __be32 addr)
{
	__u32 *w = (__u32 *)out;
	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0xffff);
	w[3] = addr;
}

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Parse Ethernet, IPv4 or IPv6 without options or extension headers, and UDP.
 * Returns an outcome to pass with, or -1 when the packet is ours to look up. */
static __always_inline int parse(struct xdp_md *ctx, struct parsed *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;
	__u32 l3_total;

	if ((void *)(eth + 1) > end)
		return OUT_NOT_UDP;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP)
			return OUT_NOT_UDP;
		if (ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			return OUT_IRREGULAR;
		map_v4(p->key.remote_ip, ip->saddr);
		map_v4(p->key.local_ip, ip->daddr);
		p->l3_len = sizeof(*ip);
		p->ip_id = ip->id;
		p->v4 = 1;
		l3_total = bpf_ntohs(ip->tot_len);
		udp = (void *)(ip + 1);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP)
			return OUT_NOT_UDP;
		__builtin_memcpy(p->key.remote_ip, &ip6->saddr, 16);
		__builtin_memcpy(p->key.local_ip, &ip6->daddr, 16);
		p->l3_len = sizeof(*ip6);
		p->ip_id = 0;
		p->v4 = 0;
		l3_total = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		udp = (void *)(ip6 + 1);
	} else {
		return OUT_NOT_UDP;
	}
	if ((void *)(udp + 1) > end)
		return OUT_IRREGULAR;
	p->udp_len = bpf_ntohs(udp->len);
	p->payload = sizeof(struct ethhdr) + p->l3_len + sizeof(*udp);
	/* The IP length must be exactly IP header + UDP length; the frame may be longer
	 * (Ethernet padding), never shorter. */
	if (p->udp_len < sizeof(*udp) || l3_total != p->l3_len + p->udp_len ||
	    l3_total > MAX_FRAME || data + sizeof(struct ethhdr) + l3_total > end)
		return OUT_IRREGULAR;
	p->key.remote_port = udp->source;
	p->key.local_port = udp->dest;
	p->udp_check = udp->check;
	return -1;
}

/* The channel number when the payload looks like ChannelData (first byte 0x40-0x7F), else 0. */
static __always_inline __be16 channel_of(struct xdp_md *ctx, const struct parsed *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *payload = data + p->payload;

	if (p->payload > 100 || (void *)(payload + 4) > end || p->udp_len < 8 + 4)
		return 0;
	if (payload[0] < 0x40 || payload[0] > 0x7f)
		return 0;
	return *(__be16 *)payload;
}

static __always_inline int same_mac(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

/* Remember that `ip` answers through the interface and MAC this packet came from. */
static __always_inline void learn(struct xdp_md *ctx, const __u8 *ip)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct neighbour *known, fresh = {};
	struct interface *interface;
	__u32 ifindex = ctx->ingress_ifindex;

	if ((void *)(eth + 1) > end)
		return;
	known = bpf_map_lookup_elem(&neighbours, ip);
	if (known && known->ifindex == ctx->ingress_ifindex &&
	    same_mac(known->remote_mac, eth->h_source) && same_mac(known->local_mac, eth->h_dest))
		return;
	interface = bpf_map_lookup_elem(&interfaces, &ifindex);
	if (!interface)
		return;
	fresh.ifindex = ifindex;
	fresh.mtu = interface->mtu;
	__builtin_memcpy(fresh.local_mac, eth->h_dest, 6);
	__builtin_memcpy(fresh.remote_mac, eth->h_source, 6);
	bpf_map_update_elem(&neighbours, ip, &fresh, BPF_ANY);
}

/* The last 4 bytes of the UDP payload, with the `pad` padding bytes kept and the data zeroed:
 * what the checksum loses when the padding goes. */
static __always_inline int tail_word(struct xdp_md *ctx, const struct parsed *p, __u32 pad,
				     __u8 *out)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 offset = p->payload + p->udp_len - 8 - 4;
	__u8 *word;

	if (offset > MAX_FRAME)
		return -1;
	word = data + offset;
	if ((void *)(word + 4) > end)
		return -1;
	for (int i = 0; i < 4; i++)
		out[i] = (__u32)i >= 4 - pad ? word[i] : 0;
	return 0;
}

#define MAX_DATA 9216 /* relayed bytes summed at most (jumbo frames); more are passed */
#define CHUNK 128

/* The ones'-complement sum of `len` bytes of the frame from `offset`; -1 if out of
 * bounds. Summed in place: whole chunks, then what is left in halving steps (64,
 * 32, ... 4 bytes), then the last 1-3 bytes in a zeroed word, which pads the last
 * word as the checksum does. `offset` is even relative to the UDP header, so the
 * words line up with the checksum's. Copying the rest out instead (into a zeroed
 * buffer, summed whole) cost a 160-byte packet 12% more of the program's time.
 * A global function, so the verifier checks it once on its own: inlined, it
 * would walk every combination of steps for every chunk count, past its limit. */
__attribute__((noinline)) __s64 sum_data(struct xdp_md *ctx, __u32 offset, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__s64 sum = 0;
	__u32 done = 0, at;
	__u8 *p;

	if (offset > 128 || len > MAX_DATA)
		return -1;
	for (int i = 0; i < MAX_DATA / CHUNK && done + CHUNK <= len; i++, done += CHUNK) {
		at = offset + done;
		asm volatile("" : "+r"(at)); /* keep the mask below: the verifier needs it */
		p = data + (at & 0x3fff);
		if ((void *)(p + CHUNK) > end)
			return -1;
		sum = bpf_csum_diff(0, 0, (__be32 *)p, CHUNK, (__u32)sum);
	}
#pragma unroll
	for (__u32 size = CHUNK / 2; size >= 4; size /= 2) {
		if (len - done >= size) {
			at = offset + done;
			asm volatile("" : "+r"(at));
			p = data + (at & 0x3fff);
			if ((void *)(p + size) > end)
				return -1;
			sum = bpf_csum_diff(0, 0, (__be32 *)p, size, (__u32)sum);
			done += size;
		}
	}
	if (len - done) {
		__u8 word[4] = {};

		at = offset + done;
		asm volatile("" : "+r"(at));
		p = data + (at & 0x3fff);
		if ((void *)(p + 1) > end)
			return -1;
		word[0] = p[0];
		if (len - done > 1) {
			if ((void *)(p + 2) > end)
				return -1;
			word[1] = p[1];
		}
		if (len - done > 2) {
			if ((void *)(p + 3) > end)
				return -1;
			word[2] = p[2];
		}
		sum = bpf_csum_diff(0, 0, (__be32 *)word, 4, (__u32)sum);
	}
	return sum;
}

static __always_inline void write_ipv4(struct iphdr *ip, const struct flow *f, __u16 total,
				       __be16 id)
{
	__u64 sum;

	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(total);
	ip->id = id;
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = TTL;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = ((const __u32 *)f->src_ip)[3];
	ip->daddr = ((const __u32 *)f->dst_ip)[3];
	sum = bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0);
	ip->check = ~fold(sum);
}

static __always_inline void write_ipv6(struct ipv6hdr *ip6, const struct flow *f, __u16 payload)
{
	*(__be32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(payload);
	ip6->nexthdr = IPPROTO_UDP;
	ip6->hop_limit = TTL;
	__builtin_memcpy(&ip6->saddr, f->src_ip, 16);
	__builtin_memcpy(&ip6->daddr, f->dst_ip, 16);
}

/* Forward one packet of `f`: rewrite the headers in front of the relayed data, fix
 * lengths and checksums, count it, and send it towards `hop`. */
static __always_inline int forward(struct xdp_md *ctx, const struct parsed *p,
				   const struct flow *f, const struct neighbour *hop,
				   struct meter *meter)
{
	struct csum_fields old = {}, new = {};
	int strip = f->action == ACTION_STRIP;
	int out_v4 = is_v4_mapped(f->dst_ip);
	__u32 data_len, pad = 0, old_head, new_head, new_l3, new_udp_len;
	__s64 sum, data_sum;
	void *data, *end;

	if (out_v4 != is_v4_mapped(f->src_ip))
		return count(OUT_IRREGULAR, XDP_PASS);
	if (strip) {
		void *payload = (void *)(long)ctx->data + p->payload;
		if (p->payload > 100 || payload + 4 > (void *)(long)ctx->data_end)
			return count(OUT_IRREGULAR, XDP_PASS);
		data_len = bpf_ntohs(((__be16 *)payload)[1]);
		if (4 + data_len > p->udp_len - 8)
			return count(OUT_IRREGULAR, XDP_PASS);
		pad = p->udp_len - 8 - 4 - data_len;
		/* RFC 8656 §12.5: padding up to a multiple of 4, over UDP optional; more is odd. */
		if (pad > 3 || (pad && ((data_len + pad) & 3)))
			return count(OUT_IRREGULAR, XDP_PASS);
		if (pad && tail_word(ctx, p, pad, old.tail) < 0)
			return count(OUT_IRREGULAR, XDP_PASS);
		old.channel = p->key.channel;
		old.channel_length = ((__be16 *)payload)[1];
	} else {
		data_len = p->udp_len - 8;
		new.channel = f->channel;
		new.channel_length = bpf_htons(data_len);
	}

	new_l3 = out_v4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	new_udp_len = 8 + (strip ? 0 : 4) + data_len;
	old_head = p->payload + (strip ? 4 : 0);
	new_head = sizeof(struct ethhdr) + new_l3 + 8 + (strip ? 0 : 4);
	if (new_l3 + new_udp_len > hop->mtu)
		return count(OUT_TOO_BIG, XDP_PASS);

	/* The relayed data is summed once: to check the checksum that came in (a bad one,
	 * or one a local sender left for offload to finish, goes to the kernel's own UDP,
	 * which judges it as it would without us) and to write the one that goes out. */
	data_sum = sum_data(ctx, old_head, data_len);
	if (data_sum < 0)
		return count(OUT_IRREGULAR, XDP_PASS);
	__builtin_memcpy(old.src, p->key.remote_ip, 16);
	__builtin_memcpy(old.dst, p->key.local_ip, 16);
	old.protocol = new.protocol = bpf_htons(IPPROTO_UDP);
	old.src_port = p->key.remote_port;
	old.dst_port = p->key.local_port;
	old.length = old.udp_length = bpf_htons(p->udp_len);
	old.check = p->udp_check;
	if (p->udp_check != 0 || !p->v4) {
		sum = bpf_csum_diff(0, 0, (__be32 *)&old, sizeof(old), (__u32)data_sum);
		if (sum < 0 || fold((__u64)sum) != 0xffff)
			return count(OUT_BAD_CHECKSUM, XDP_PASS);
	}
	__builtin_memcpy(new.src, f->src_ip, 16);
	__builtin_memcpy(new.dst, f->dst_ip, 16);
	new.src_port = f->src_port;
	new.dst_port = f->dst_port;
	new.length = new.udp_length = bpf_htons(new_udp_len);
	sum = bpf_csum_diff(0, 0, (__be32 *)&new, sizeof(new), (__u32)data_sum);
	if (sum < 0)
		return count(OUT_IRREGULAR, XDP_PASS);

	/* From here on the packet is changed: a failure drops it. */
	if (bpf_xdp_adjust_head(ctx, (int)old_head - (int)new_head))
		return count(OUT_ABORTED, XDP_DROP);
	{
		__s32 extra = (__s32)bpf_xdp_get_buff_len(ctx) - (__s32)(new_head + data_len);
		if (extra > 0 && bpf_xdp_adjust_tail(ctx, -extra))
			return count(OUT_ABORTED, XDP_DROP);
	}
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = data;
	struct udphdr *udp;
	if (out_v4) {
		struct iphdr *ip = (void *)(eth + 1);
		udp = (void *)(ip + 1);
		if ((void *)(udp + 1) + (strip ? 0 : 4) > end)
			return count(OUT_ABORTED, XDP_DROP);
		eth->h_proto = bpf_htons(ETH_P_IP);
		write_ipv4(ip, f, new_l3 + new_udp_len, p->ip_id);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) + (strip ? 0 : 4) > end)
			return count(OUT_ABORTED, XDP_DROP);
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		write_ipv6(ip6, f, new_udp_len);
	}
	__builtin_memcpy(eth->h_dest, hop->remote_mac, 6);
	__builtin_memcpy(eth->h_source, hop->local_mac, 6);
	udp->source = f->src_port;
	udp->dest = f->dst_port;
	udp->len = bpf_htons(new_udp_len);
	{
		__u16 check = ~fold((__u64)sum);
		udp->check = check ? check : 0xffff;
	}
	if (!strip) {
		__be16 *header = (void *)(udp + 1);
		header[0] = f->channel;
		header[1] = bpf_htons(data_len);
	}

	if (strip) {
		meter->bytes_to_peer += data_len;
		meter->packets_to_peer += 1;
	} else {
		meter->bytes_from_peer += data_len;
		meter->packets_from_peer += 1;
	}
	if (hop->ifindex == ctx->ingress_ifindex)
		return count(OUT_TX, XDP_TX);
	return count(OUT_REDIRECT, bpf_redirect(hop->ifindex, 0));
}

SEC("xdp")
int passage_xdp(struct xdp_md *ctx)
{
	struct parsed p = {};
	struct flow *f = 0;
	struct neighbour *hop;
	struct meter *meter;
	int verdict = parse(ctx, &p);

	if (verdict >= 0)
		return count(verdict, XDP_PASS);
	p.key.channel = channel_of(ctx, &p);
	if (p.key.channel)
		f = bpf_map_lookup_elem(&flows, &p.key);
	if (!f) {
		p.key.channel = 0;
		f = bpf_map_lookup_elem(&flows, &p.key);
	}
	if (!f)
		return count(OUT_NO_FLOW, XDP_PASS);
	meter = bpf_map_lookup_elem(&meters, &f->slot);
	if (!meter)
		return count(OUT_IRREGULAR, XDP_PASS);
	/* Learning costs a neighbours lookup; a channel's first packet on this CPU and
	 * every LEARN_EVERY-th after it are enough to follow a next hop that moves. */
	if (!((f->action == ACTION_STRIP ? meter->packets_to_peer : meter->packets_from_peer) &
	      (LEARN_EVERY - 1)))
		learn(ctx, p.key.remote_ip);
	hop = bpf_map_lookup_elem(&neighbours, f->dst_ip);
	if (!hop)
		return count(OUT_NO_NEIGHBOUR, XDP_PASS);
	return forward(ctx, &p, f, hop, meter);
}

char LICENSE[] SEC("license") = "Apache-2.0";
