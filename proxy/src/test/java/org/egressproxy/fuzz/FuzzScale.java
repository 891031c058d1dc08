package org.egressproxy.fuzz;

import net.jqwik.api.lifecycle.AroundPropertyHook;
import net.jqwik.api.lifecycle.PropertyExecutionResult;
import net.jqwik.api.lifecycle.PropertyExecutor;
import net.jqwik.api.lifecycle.PropertyLifecycleContext;

/**
 * Multiplies each fuzz property's {@code tries} by the system property {@code egress.fuzz.scale}
 * (default 1): the CI run stays within seconds, a manual run goes as far as wanted, e.g.
 * {@code mvn -B -pl proxy -am test -Pfuzz} (scale 50) or {@code -Degress.fuzz.scale=200}.
 */
public final class FuzzScale implements AroundPropertyHook {
  /** The factor from {@code egress.fuzz.scale}; at least 1. */
  public static int factor() {
    return Math.max(1, Integer.getInteger("egress.fuzz.scale", 1));
  }

  /** Registered on a class, it applies to the class's properties. */
  @Override
  public net.jqwik.api.lifecycle.PropagationMode propagateTo() {
    return net.jqwik.api.lifecycle.PropagationMode.ALL_DESCENDANTS;
  }

  @Override
  public PropertyExecutionResult aroundProperty(PropertyLifecycleContext context,
      PropertyExecutor property) {
    int factor = factor();
    if (factor > 1) {
      context.attributes().tries()
          .ifPresent(t -> context.attributes().setTries((int) Math.min(Integer.MAX_VALUE,
              (long) t * factor)));
    }
    return property.execute();
  }
}
