/** Retries `check` until it passes or `timeoutMs` runs out (watches and kernels converge asynchronously). */
export async function eventually(check: () => void | Promise<void>, timeoutMs = 2000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}
