/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The anychain lab payload: the first bytes of the UDP payload of every packet that
 * anychain-trafgen sends. Each VNF on the chain writes its instance id into served_by[slot]
 * (its position in the chain), so anychain-sink can tell which instances served a packet.
 * All fields are in network byte order. Layout (36 bytes, no padding):
 *
 *   offset  size  field
 *        0     4  magic       AC_LAB_MAGIC ("ACLB")
 *        4     4  flow_id     chosen by the generator, unique per flow within a run
 *        8     4  seq         0, 1, 2, ... within the flow
 *       12     8  send_ts_ns  CLOCK_REALTIME at send, nanoseconds
 *       20    16  served_by   AC_LAB_SLOTS instance ids, 0 = not served at that slot
 *
 * Packets may carry more payload after these 36 bytes (zero filled by the generator).
 */
#ifndef ANYCHAIN_LAB_PAYLOAD_H
#define ANYCHAIN_LAB_PAYLOAD_H

#include <linux/types.h>

#define AC_LAB_MAGIC 0x41434C42u /* "ACLB" */
#define AC_LAB_SLOTS 4
#define AC_LAB_PAYLOAD_LEN 36

struct ac_lab_payload {
	__be32 magic;
	__be32 flow_id;
	__be32 seq;
	__be64 send_ts_ns;
	__be32 served_by[AC_LAB_SLOTS];
} __attribute__((packed));

#define AC_LAB_OFF_MAGIC 0
#define AC_LAB_OFF_FLOW_ID 4
#define AC_LAB_OFF_SEQ 8
#define AC_LAB_OFF_SEND_TS 12
#define AC_LAB_OFF_SERVED_BY 20

#endif /* ANYCHAIN_LAB_PAYLOAD_H */
