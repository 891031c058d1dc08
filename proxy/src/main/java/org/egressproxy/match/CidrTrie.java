package org.egressproxy.match;

import java.lang.reflect.Array;

/**
 * CIDR rules in two binary tries (IPv4, IPv6). A lookup walks at most 32 or 128 bits and
 * considers every network that contains the address: a deny beats an allow, the longest prefix
 * wins between equals. Immutable once built.
 */
public final class CidrTrie<E extends MatchEntry> {
  private final Node<E> v4;
  private final Node<E> v6;
  private final int size;

  private CidrTrie(Node<E> v4, Node<E> v6, int size) {
    this.v4 = v4;
    this.v6 = v6;
    this.size = size;
  }

  public int size() {
    return size;
  }

  public E find(IpLiteral address, int port, int protocol) {
    byte[] a = address.rawBytes();
    Node<E> node = a.length == 4 ? v4 : v6;
    E best = null;
    for (int bit = 0; node != null; bit++) {
      if (node.entries != null) {
        best = MatchEntry.better(best, MatchEntry.pick(node.entries, port, protocol));
      }
      if (bit == a.length * 8) {
        break;
      }
      node = (a[bit >>> 3] & (0x80 >>> (bit & 7))) == 0 ? node.zero : node.one;
    }
    return best;
  }

  /** True when some network in the trie contains {@code address}, whatever its entries say. */
  public boolean covers(IpLiteral address) {
    byte[] a = address.rawBytes();
    Node<E> node = a.length == 4 ? v4 : v6;
    for (int bit = 0; node != null; bit++) {
      if (node.entries != null) {
        return true;
      }
      if (bit == a.length * 8) {
        break;
      }
      node = (a[bit >>> 3] & (0x80 >>> (bit & 7))) == 0 ? node.zero : node.one;
    }
    return false;
  }

  public static <E extends MatchEntry> Builder<E> builder(Class<E> type) {
    return new Builder<>(type);
  }

  public static final class Builder<E extends MatchEntry> {
    private final Class<E> type;
    private final Node<E> v4 = new Node<>();
    private final Node<E> v6 = new Node<>();
    private int size;

    private Builder(Class<E> type) {
      this.type = type;
    }

    @SuppressWarnings("unchecked")
    public Builder<E> add(Cidr cidr, E entry) {
      byte[] a = cidr.network().rawBytes();
      Node<E> node = a.length == 4 ? v4 : v6;
      for (int bit = 0; bit < cidr.prefix(); bit++) {
        if ((a[bit >>> 3] & (0x80 >>> (bit & 7))) == 0) {
          node = node.zero == null ? (node.zero = new Node<>()) : node.zero;
        } else {
          node = node.one == null ? (node.one = new Node<>()) : node.one;
        }
      }
      int n = node.entries == null ? 0 : node.entries.length;
      E[] grown = (E[]) Array.newInstance(type, n + 1);
      if (n > 0) {
        System.arraycopy(node.entries, 0, grown, 0, n);
      }
      grown[n] = entry;
      node.entries = grown;
      size++;
      return this;
    }

    /** The trie; the builder must not be used afterwards. */
    public CidrTrie<E> build() {
      return new CidrTrie<>(v4, v6, size);
    }
  }

  private static final class Node<E> {
    Node<E> zero;
    Node<E> one;
    E[] entries;
  }
}
