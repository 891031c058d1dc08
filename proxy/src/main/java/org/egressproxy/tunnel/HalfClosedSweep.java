package org.egressproxy.tunnel;

import io.netty.channel.Channel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.util.concurrent.FastThreadLocal;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * Tunnel sides whose peer has sent its FIN, looked at every {@link #PERIOD_MS} ms for a reset
 * that came after it. Netty reports nothing on a socket whose input has ended (it reads EOF
 * again and stays quiet), so a client that half-closes and then vanishes would hold its tunnel,
 * and the upstream connection, until the next write to it or {@code timeouts.idle} (an hour by
 * default). Epoll only (the socket's TCP_INFO says it); one set and one periodic task per event
 * loop, everything on that loop.
 */
final class HalfClosedSweep {
  static final long PERIOD_MS = 2000;
  private static final FastThreadLocal<HalfClosedSweep> PER_LOOP = new FastThreadLocal<>();

  private final Set<Channel> channels = new HashSet<>();

  private HalfClosedSweep() {}

  /** After {@code ch}'s input ended; on its event loop. */
  static void watch(Channel ch) {
    if (!(ch instanceof EpollSocketChannel) || !ch.eventLoop().inEventLoop()) {
      return;
    }
    HalfClosedSweep sweep = PER_LOOP.get();
    if (sweep == null) {
      HalfClosedSweep created = new HalfClosedSweep();
      PER_LOOP.set(created);
      ch.eventLoop().scheduleAtFixedRate(created::sweep, PERIOD_MS, PERIOD_MS,
          TimeUnit.MILLISECONDS);
      sweep = created;
    }
    sweep.channels.add(ch);
  }

  /** When {@code ch} closed; on its event loop. */
  static void forget(Channel ch) {
    if (ch instanceof EpollSocketChannel) {
      HalfClosedSweep sweep = PER_LOOP.getIfExists();
      if (sweep != null) {
        sweep.channels.remove(ch);
      }
    }
  }

  /** TCP_CLOSE in {@code tcp_info.tcpi_state}: reset, or both FINs sent and acknowledged. */
  private static final int TCP_CLOSE = 7;

  /** Whether {@code ch} is closed at the TCP level (reset, or both directions done). */
  private static boolean resetByPeer(EpollSocketChannel ch) {
    try {
      return ch.tcpInfo().state() == TCP_CLOSE;
    } catch (RuntimeException e) {
      return false; // on doubt, left to the next write or timeouts.idle
    }
  }

  private void sweep() {
    List<Channel> reset = null;
    for (Iterator<Channel> it = channels.iterator(); it.hasNext(); ) {
      Channel ch = it.next();
      if (!ch.isOpen()) {
        it.remove();
      } else if (resetByPeer((EpollSocketChannel) ch)) {
        it.remove();
        if (reset == null) {
          reset = new ArrayList<>();
        }
        reset.add(ch);
      }
    }
    if (reset != null) {
      // The relay's channelInactive closes the other side once what was relayed to it is out.
      reset.forEach(Channel::close);
    }
  }
}
