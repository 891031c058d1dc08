#!/bin/sh
# egress-proxy: apply or remove transparent interception (TPROXY) on the appliance.
#
#   egress-proxy-tproxy.sh apply    load egress-proxy.nft and add the policy route
#   egress-proxy-tproxy.sh remove   delete both (the proxy keeps serving its explicit port)
#   egress-proxy-tproxy.sh status   show the table, the ip rule and the route
#
# Settings, from the environment or /etc/default/egress-proxy-tproxy (KEY=value lines):
#   TLS_PORT      tls-sni listener port                          (8443)
#   HTTP_PORT     http-host listener port                        (8080)
#   CLIENT_CIDRS  networks to intercept, comma-separated         (10.0.0.0/8,172.16.0.0/12,192.168.0.0/16)
#   MARK          packet mark selecting the local route          (0x1)
#   ROUTE_TABLE   routing table holding the local default route  (100)
#   RULE_PREF     priority of the ip rule                        (100)
#   NFT_FILE      the rules                                      (egress-proxy.nft beside this script)
# The tls-sni and http-host listeners must have `transparent: true` (IP_TRANSPARENT), else the
# kernel does not hand them the connections.
set -eu

[ -r /etc/default/egress-proxy-tproxy ] && . /etc/default/egress-proxy-tproxy

TLS_PORT=${TLS_PORT:-8443}
HTTP_PORT=${HTTP_PORT:-8080}
CLIENT_CIDRS=${CLIENT_CIDRS:-10.0.0.0/8,172.16.0.0/12,192.168.0.0/16}
MARK=${MARK:-0x1}
ROUTE_TABLE=${ROUTE_TABLE:-100}
RULE_PREF=${RULE_PREF:-100}
NFT_FILE=${NFT_FILE:-$(dirname "$0")/egress-proxy.nft}

remove() {
  if nft list table inet egress_proxy >/dev/null 2>&1; then
    nft delete table inet egress_proxy
  fi
  while ip -4 rule del fwmark "$MARK" lookup "$ROUTE_TABLE" 2>/dev/null; do :; done
  ip -4 route flush table "$ROUTE_TABLE" 2>/dev/null || true
}

case "${1:-}" in
  apply)
    clients=$(printf '%s' "$CLIENT_CIDRS" | tr -d ' ' | sed 's/,/, /g')
    nft -D "TLS_PORT=$TLS_PORT" -D "HTTP_PORT=$HTTP_PORT" -D "MARK=$MARK" \
        -D "CLIENTS={ $clients }" -f "$NFT_FILE"
    while ip -4 rule del fwmark "$MARK" lookup "$ROUTE_TABLE" 2>/dev/null; do :; done
    ip -4 rule add fwmark "$MARK" lookup "$ROUTE_TABLE" pref "$RULE_PREF"
    ip -4 route replace local 0.0.0.0/0 dev lo table "$ROUTE_TABLE"
    echo "egress-proxy-tproxy: tcp/443 -> :$TLS_PORT, tcp/80 -> :$HTTP_PORT from $CLIENT_CIDRS"
    ;;
  remove)
    remove
    echo "egress-proxy-tproxy: removed"
    ;;
  status)
    nft list table inet egress_proxy || echo "no table inet egress_proxy"
    ip -4 rule show | grep "lookup $ROUTE_TABLE" || echo "no ip rule for table $ROUTE_TABLE"
    ip -4 route show table "$ROUTE_TABLE"
    ;;
  *)
    echo "usage: $0 apply|remove|status" >&2
    exit 2
    ;;
esac
