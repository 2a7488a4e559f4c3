import { BlockList, isIP } from 'node:net';

/**
 * What an HTTP processor without `allowPrivateNetwork` may not reach: every block of the IANA IPv4
 * and IPv6 Special-Purpose Address Registries (as of 2025-10), and the rest of the address space
 * that is not global unicast. Even the few blocks the registries mark globally reachable (protocol
 * anycast, AS112, AMT) are refused: no processor lives there, and refusing is the safe mistake.
 *
 * `embedsV4` marks the two blocks that carry an IPv4 address at a bit offset and are otherwise
 * ordinary routes (NAT64 in an IPv6-only VPC, 6to4): their addresses are judged by that IPv4
 * address instead. Every other IPv4-in-IPv6 form (mapped, compatible, local-use NAT64, Teredo) is
 * refused whole.
 */
interface SpecialBlock {
  cidr: string;
  name: string;
  rfc: string;
  /** Where the IPv4 address sits (bits from the start) and how an IPv4 network reads inside the block. */
  embedsV4?: { at: number; carrying: (high: string, low: string) => string };
}

export const SPECIAL_BLOCKS: readonly SpecialBlock[] = [
  // IANA IPv4 Special-Purpose Address Registry
  { cidr: '0.0.0.0/8', name: '"This network"', rfc: 'RFC 791 §3.2' },
  { cidr: '10.0.0.0/8', name: 'Private-Use', rfc: 'RFC 1918' },
  { cidr: '100.64.0.0/10', name: 'Shared Address Space (carrier-grade NAT)', rfc: 'RFC 6598' },
  { cidr: '127.0.0.0/8', name: 'Loopback', rfc: 'RFC 1122 §3.2.1.3' },
  { cidr: '169.254.0.0/16', name: 'Link Local (instance metadata lives here)', rfc: 'RFC 3927' },
  { cidr: '172.16.0.0/12', name: 'Private-Use', rfc: 'RFC 1918' },
  { cidr: '192.0.0.0/24', name: 'IETF Protocol Assignments', rfc: 'RFC 6890 §2.1' },
  { cidr: '192.0.0.0/29', name: 'IPv4 Service Continuity Prefix', rfc: 'RFC 7335' },
  { cidr: '192.0.0.8/32', name: 'IPv4 dummy address', rfc: 'RFC 7600' },
  { cidr: '192.0.0.9/32', name: 'Port Control Protocol Anycast', rfc: 'RFC 7723' },
  { cidr: '192.0.0.10/32', name: 'Traversal Using Relays around NAT Anycast', rfc: 'RFC 8155' },
  { cidr: '192.0.0.170/31', name: 'NAT64/DNS64 Discovery', rfc: 'RFC 8880, RFC 7050 §2.2' },
  { cidr: '192.0.2.0/24', name: 'Documentation (TEST-NET-1)', rfc: 'RFC 5737' },
  { cidr: '192.31.196.0/24', name: 'AS112-v4', rfc: 'RFC 7535' },
  { cidr: '192.52.193.0/24', name: 'AMT', rfc: 'RFC 7450' },
  { cidr: '192.88.99.0/24', name: 'Deprecated (6to4 Relay Anycast)', rfc: 'RFC 7526' },
  { cidr: '192.168.0.0/16', name: 'Private-Use', rfc: 'RFC 1918' },
  { cidr: '192.175.48.0/24', name: 'Direct Delegation AS112 Service', rfc: 'RFC 7534' },
  { cidr: '198.18.0.0/15', name: 'Benchmarking', rfc: 'RFC 2544' },
  { cidr: '198.51.100.0/24', name: 'Documentation (TEST-NET-2)', rfc: 'RFC 5737' },
  { cidr: '203.0.113.0/24', name: 'Documentation (TEST-NET-3)', rfc: 'RFC 5737' },
  { cidr: '240.0.0.0/4', name: 'Reserved', rfc: 'RFC 1112 §4' },
  { cidr: '255.255.255.255/32', name: 'Limited Broadcast', rfc: 'RFC 8190, RFC 919 §7' },
  // IANA IPv4 Multicast Address Space Registry
  { cidr: '224.0.0.0/4', name: 'Multicast', rfc: 'RFC 5771' },

  // IANA IPv6 Special-Purpose Address Registry
  { cidr: '::1/128', name: 'Loopback Address', rfc: 'RFC 4291' },
  { cidr: '::/128', name: 'Unspecified Address', rfc: 'RFC 4291' },
  { cidr: '::ffff:0:0/96', name: 'IPv4-mapped Address', rfc: 'RFC 4291' },
  {
    cidr: '64:ff9b::/96',
    name: 'IPv4-IPv6 Translation (NAT64)',
    rfc: 'RFC 6052',
    embedsV4: { at: 96, carrying: (high, low) => `64:ff9b::${high}:${low}` },
  },
  { cidr: '64:ff9b:1::/48', name: 'Local-use IPv4/IPv6 Translation', rfc: 'RFC 8215' },
  { cidr: '100::/64', name: 'Discard-Only Address Block', rfc: 'RFC 6666' },
  { cidr: '100:0:0:1::/64', name: 'Dummy IPv6 Prefix', rfc: 'RFC 9780' },
  { cidr: '2001::/23', name: 'IETF Protocol Assignments', rfc: 'RFC 2928' },
  { cidr: '2001::/32', name: 'TEREDO', rfc: 'RFC 4380, RFC 8190' },
  { cidr: '2001:1::1/128', name: 'Port Control Protocol Anycast', rfc: 'RFC 7723' },
  { cidr: '2001:1::2/128', name: 'Traversal Using Relays around NAT Anycast', rfc: 'RFC 8155' },
  { cidr: '2001:1::3/128', name: 'DNS-SD Service Registration Protocol Anycast', rfc: 'RFC 9665' },
  { cidr: '2001:2::/48', name: 'Benchmarking', rfc: 'RFC 5180' },
  { cidr: '2001:3::/32', name: 'AMT', rfc: 'RFC 7450' },
  { cidr: '2001:4:112::/48', name: 'AS112-v6', rfc: 'RFC 7535' },
  { cidr: '2001:10::/28', name: 'Deprecated (previously ORCHID)', rfc: 'RFC 4843' },
  { cidr: '2001:20::/28', name: 'ORCHIDv2', rfc: 'RFC 7343' },
  { cidr: '2001:30::/28', name: 'Drone Remote ID Protocol Entity Tags', rfc: 'RFC 9374' },
  { cidr: '2001:db8::/32', name: 'Documentation', rfc: 'RFC 3849' },
  {
    cidr: '2002::/16',
    name: '6to4',
    rfc: 'RFC 3056',
    embedsV4: { at: 16, carrying: (high, low) => `2002:${high}:${low}::` },
  },
  { cidr: '2620:4f:8000::/48', name: 'Direct Delegation AS112 Service', rfc: 'RFC 7534' },
  { cidr: '3fff::/20', name: 'Documentation', rfc: 'RFC 9637' },
  { cidr: '5f00::/16', name: 'Segment Routing (SRv6) SIDs', rfc: 'RFC 9602' },
  { cidr: 'fc00::/7', name: 'Unique-Local', rfc: 'RFC 4193, RFC 8190' },
  { cidr: 'fe80::/10', name: 'Link-Local Unicast', rfc: 'RFC 4291' },
  // IANA IPv6 Address Space Registry: deprecated, multicast, and everything outside 2000::/3
  // (global unicast) is reserved by the IETF.
  { cidr: '::/96', name: 'IPv4-Compatible (deprecated)', rfc: 'RFC 4291 §2.5.5.1' },
  { cidr: 'fec0::/10', name: 'Site-Local (deprecated)', rfc: 'RFC 3879' },
  { cidr: 'ff00::/8', name: 'Multicast', rfc: 'RFC 4291 §2.7' },
  { cidr: '::/3', name: 'Reserved by IETF (not global unicast)', rfc: 'RFC 4291 §2.4' },
  { cidr: '4000::/2', name: 'Reserved by IETF (not global unicast)', rfc: 'RFC 4291 §2.4' },
  { cidr: '8000::/1', name: 'Reserved by IETF (not global unicast)', rfc: 'RFC 4291 §2.4' },
];

function split(cidr: string): { network: string; prefix: number; family: 4 | 6 } {
  const slash = cidr.lastIndexOf('/');
  const network = cidr.slice(0, slash);
  return { network, prefix: Number(cidr.slice(slash + 1)), family: isIP(network) === 4 ? 4 : 6 };
}

/** An IPv4 network's address as two 16-bit hex groups, as IPv6 text carries it. */
function groups(v4network: string): [string, string] {
  const [a = 0, b = 0, c = 0, d = 0] = v4network.split('.').map(Number);
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
}

/**
 * Two lists, because a BlockList matches IPv4 addresses against IPv6 rules through their mapped
 * form: an IPv6 rule for `::ffff:0:0/96` would refuse every IPv4 address.
 */
const refusedV4 = new BlockList();
const refusedV6 = new BlockList();
/** The blocks whose verdict is their embedded IPv4 address's, and the refused forms inside them. */
const carriers = new BlockList();
const refusedCarried = new BlockList();

for (const block of SPECIAL_BLOCKS) {
  const { network, prefix, family } = split(block.cidr);
  if (family === 4) refusedV4.addSubnet(network, prefix, 'ipv4');
  else if (block.embedsV4 !== undefined) carriers.addSubnet(network, prefix, 'ipv6');
  else refusedV6.addSubnet(network, prefix, 'ipv6');
}
for (const { embedsV4 } of SPECIAL_BLOCKS) {
  if (!embedsV4) continue;
  for (const block of SPECIAL_BLOCKS) {
    const { network, prefix, family } = split(block.cidr);
    if (family === 4) refusedCarried.addSubnet(embedsV4.carrying(...groups(network)), embedsV4.at + prefix, 'ipv6');
  }
}

/**
 * Whether an address is off limits to HTTP processors by default. Decided on the parsed address
 * (BlockList), so no spelling of it — `::ffff:7f00:1`, `0:0:0:0:0:ffff:127.0.0.1`, upper case —
 * slips past; anything that is not an IP address at all is refused too.
 */
export function isSpecialAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return refusedV4.check(address, 'ipv4');
  if (family !== 6) return true;
  if (carriers.check(address, 'ipv6')) return refusedCarried.check(address, 'ipv6');
  return refusedV6.check(address, 'ipv6');
}
