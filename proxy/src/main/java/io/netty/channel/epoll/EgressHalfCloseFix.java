package io.netty.channel.epoll;

import io.netty.channel.Channel;
import java.io.IOException;

/**
 * A workaround for a Netty epoll bug (4.2.18, still in 4.2.21) that loses data after a
 * half-close, living in Netty's package because the flags it sets are only reachable from there.
 *
 * <p>When a half-closed socket's interest set becomes empty (its input is done and nothing is
 * waiting to be written), {@code EpollIoHandler} removes the socket from epoll
 * ({@code EPOLL_CTL_DEL}) but keeps its registration marked as added. The next write that has to
 * wait asks for {@code EPOLLOUT} with {@code EPOLL_CTL_MOD}, which fails with ENOENT, and Netty
 * shuts the output: the rest of the answer is lost.
 *
 * <p>Once the input is shut, this keeps {@code EPOLLERR | EPOLLET} in the interest set, so that
 * it never becomes empty and the socket stays in epoll until it closes. {@code EPOLLERR} is
 * reported by the kernel whether asked for or not; edge-triggering means that an error or hang-up
 * on the half-closed socket wakes the loop once rather than on every turn (Netty does not close
 * on it while the input is shut; the next write does), and {@code EPOLLOUT}, the one event
 * still asked for, works edge-triggered as it did in Netty 4.1's default mode.
 *
 * <p>Remove this class when a Netty release fixes the registration state (the reproducer:
 * {@code DataPlaneTest.aLargeAnswerAfterBothFinsOnEpoll}).
 */
public final class EgressHalfCloseFix {
  private EgressHalfCloseFix() {}

  /**
   * After {@code ch}'s input was shut (a FIN read, half-closure allowed): keeps it in epoll
   * until it closes. Nothing for other transports. On the channel's event loop.
   */
  public static void inputShutdown(Channel ch) {
    if (ch instanceof AbstractEpollChannel epoll && epoll.isOpen() && epoll.isRegistered()) {
      try {
        epoll.setFlag(Native.EPOLLET | Native.EPOLLERR);
      } catch (IOException | RuntimeException e) {
        // the socket is failing anyway; its next write reports it
      }
    }
  }
}
