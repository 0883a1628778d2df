/**
 * metav1.Status, the body of every error answer and of a watch ERROR event (apimachinery
 * pkg/apis/meta/v1/types.go, `Status`: kind "Status", status "Failure", message, reason, code), and how its
 * text is shown: one line, cut after redaction.
 */

/** How much of a server's message is shown. */
const MAX_MESSAGE_CHARS = 300;

/** A metav1.Status, from an error body; undefined when the body is not one. */
export function parseStatus(text: string): { code?: number; reason?: string; message?: string } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return statusOf(value);
}

/** The fields of a Status object that are used; undefined when `value` is not one. */
export function statusOf(value: unknown): { code?: number; reason?: string; message?: string } | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (v.kind !== 'Status' && v.status !== 'Failure') return undefined;
  return {
    ...(Number.isInteger(v.code) ? { code: v.code as number } : {}),
    ...(typeof v.reason === 'string' && /^[A-Za-z]{1,64}$/.test(v.reason) ? { reason: v.reason } : {}),
    ...(typeof v.message === 'string' ? { message: v.message } : {}),
  };
}

/** One line, at most MAX_MESSAGE_CHARS (cut after redaction, so no part of a secret survives the cut). */
export function clip(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > MAX_MESSAGE_CHARS ? `${line.slice(0, MAX_MESSAGE_CHARS)}…` : line;
}
