"""IP addresses: who is calling (behind trusted proxies only), and the public IP ranges
credentials register.

Client address. The socket peer is the client unless it is one of the configured
trusted proxies (``VACINA_D1_TRUSTED_PROXIES``: addresses or CIDRs). Only then is the
forwarding header (``VACINA_D1_FORWARDED_HEADER``, ``X-Forwarded-For`` by default, or
RFC 7239 ``Forwarded``) read, from right to left, skipping hops that are themselves
trusted proxies: the first untrusted hop is the client (the rightmost-untrusted-hop
rule — everything to its left was written by the client and proves nothing). A
header from an untrusted peer is ignored. A malformed hop met before any untrusted
one makes the address unknown (``None``): checks against it fail closed.

Ranges. A credential's range is a start and an end of the same family, start ≤ end,
made only of public addresses: no private, loopback, link-local, multicast, reserved,
shared (100.64/10), documentation or other special-purpose block anywhere between
the two ends, and not larger than a /16 (IPv4) or a /48 (IPv6).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_RANGE_SIZE = {4: 2**16, 6: 2**80}
MAX_HOPS = 30

# IANA special-purpose blocks (RFC 6890 and successors) plus multicast: no address of a
# registered range may fall in one.
_SPECIAL = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.31.196.0/24",
        "192.52.193.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "192.175.48.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/8",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
]
_IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def parse_address(text: str | None) -> IPAddress | None:
    """An address from a header hop or a peer: plain, ``[v6]``, ``[v6]:port``,
    ``v4:port``; IPv4-mapped IPv6 becomes IPv4. None when it is not an address."""
    if not text:
        return None
    value = text.strip().strip('"')
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        value = value[1:end]
    elif value.count(":") == 1:  # v4:port (a bare IPv6 has at least two colons)
        value = value.split(":", 1)[0]
    if "%" in value:  # a zone id says nothing about who is calling
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[str]) -> list[IPNetwork]:
    """Trusted proxies as networks (a bare address is a /32 or /128); ValueError names
    the entry that is neither."""
    networks = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"VACINA_D1_TRUSTED_PROXIES: {entry!r} não é um endereço IP nem uma rede CIDR") from None
    return networks


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def _forwarded_for(values: list[str]) -> list[str]:
    """The ``for=`` of each element of RFC 7239 ``Forwarded`` values, in order."""
    hops = []
    for value in values:
        for element in value.split(","):
            found = None
            for pair in element.split(";"):
                name, _, content = pair.strip().partition("=")
                if name.strip().lower() == "for":
                    found = content.strip()
            hops.append(found or "")
    return hops


@dataclass(frozen=True)
class ClientAddress:
    address: IPAddress | None  # None: unknown (a malformed hop behind a trusted proxy)
    peer: str | None  # the socket peer, as the server saw it

    def __str__(self) -> str:
        return str(self.address) if self.address is not None else ""

    @property
    def text(self) -> str | None:
        return str(self.address) if self.address is not None else None


def resolve(peer: str | None, header_values: list[str], proxies: Sequence[IPNetwork], header_name: str) -> ClientAddress:
    """The client's address from the socket peer and the forwarding header's values
    (every occurrence, in order)."""
    peer_address = parse_address(peer)
    if peer_address is None or not _trusted(peer_address, proxies):
        return ClientAddress(peer_address, peer)
    if header_name.lower() == "forwarded":
        hops = _forwarded_for(header_values)
    else:
        hops = [hop for value in header_values for hop in value.split(",")]
    hops = hops[-MAX_HOPS:]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return ClientAddress(None, peer)
        if not _trusted(address, proxies):
            return ClientAddress(address, peer)
    # Every hop is a trusted proxy (or there is no header): the leftmost one we know.
    leftmost = parse_address(hops[0]) if hops else peer_address
    return ClientAddress(leftmost, peer)


def client_address(request, settings) -> ClientAddress:
    """``resolve`` for a Starlette request, with the portal's settings."""
    peer = request.client.host if request.client else None
    header = settings.forwarded_header
    values = request.headers.getlist(header)
    return resolve(peer, values, settings.trusted_proxy_networks, header)


# -- registered ranges -------------------------------------------------------------------


def public_problem(address: IPAddress) -> str | None:
    """Why an address is not public, or None when it is."""
    if address.is_loopback:
        return "é de loopback"
    if address.is_link_local:
        return "é de link local"
    if address.is_multicast:
        return "é de multicast"
    if address.is_unspecified:
        return "é o endereço não especificado"
    if address.is_private:
        return "é privado ou reservado para documentação"
    if address.is_reserved:
        return "é reservado"
    if not address.is_global or any(address in net for net in _SPECIAL if net.version == address.version):
        return "não é um endereço público"
    if address.version == 6 and address not in _IPV6_GLOBAL_UNICAST:
        return "não é um endereço IPv6 público (2000::/3)"
    return None


def parse_public(text: str) -> IPAddress:
    """A public address, or ValueError saying (in Portuguese) why not."""
    value = (text or "").strip()
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{text!r} não é um endereço IPv4 nem IPv6") from None
    problem = public_problem(address)
    if problem:
        raise ValueError(f"{address} {problem}; informe um endereço público")
    return address


def range_problem(start: IPAddress, end: IPAddress) -> str | None:
    """Why [start, end] is not an acceptable public range, or None."""
    if start.version != end.version:
        return f"o início ({start}) é IPv{start.version} e o fim ({end}) é IPv{end.version}: use a mesma família"
    if int(start) > int(end):
        return f"o fim ({end}) é anterior ao início ({start})"
    size = int(end) - int(start) + 1
    if size > MAX_RANGE_SIZE[start.version]:
        limit = "/16 (65.536 endereços)" if start.version == 4 else "/48"
        return f"a faixa de {start} a {end} é maior que um {limit}"
    for net in _SPECIAL:
        if net.version == start.version and int(start) <= int(net.broadcast_address) and int(net.network_address) <= int(end):
            return f"a faixa de {start} a {end} inclui a rede não pública {net}"
    return None


def admits(start: str | None, end: str | None, address: IPAddress | None) -> bool:
    """Whether a credential's range lets ``address`` in. No range: any address; a
    range and an unknown address: refused (fail closed)."""
    if not start or not end:
        return True
    if address is None:
        return False
    low, high = ipaddress.ip_address(start), ipaddress.ip_address(end)
    return address.version == low.version and int(low) <= int(address) <= int(high)
