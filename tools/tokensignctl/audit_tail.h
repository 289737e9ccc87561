// tokensignctl audit tail FILE [--follow]: an audit log's records decoded, one
// line each, for people watching a daemon (read-only, a local file, no
// daemon and no PIN; it does not check the hash chain or the checkpoint
// signatures: `audit verify` does).
//
// A decision record (a token signed or denied, a KeyAdmin call, a keyset
// event) prints as
//   TIME KIND OUTCOME caller=C issuer=I sub=S actors=[A <- B@ISS] kid=K jti=J
//   reason=R
// on one line, members left out when empty. Values made only of
// [A-Za-z0-9-_.:/~+#%] print bare; any other value (spaces, quotes, '=',
// control or non-ASCII characters, a bidi override) prints as a JSON string
// with non-ASCII escaped, so no value can fake another field or a line.
// Genesis, continuation, repair and checkpoint lines print as TIME and the
// line type with their main members; a line that is not a valid audit record
// prints "line N: not an audit record: WHY".
//
// --follow keeps reading as the daemon appends, like `tail -F`: when the log
// is rotated (renamed to FILE.1 and a new FILE started, perhaps several times
// between two looks) it finishes the old file, reads the files that follow
// it, found by seq (which numbers the whole chain), in order, and continues
// with the new FILE; no record is printed twice. A file truncated under it is
// read again from its start. It polls every 200 ms and runs until killed.
//
// Thread-safety: single-threaded CLI code.
#ifndef TOKENSIGN_TOOLS_TOKENSIGNCTL_AUDIT_TAIL_H_
#define TOKENSIGN_TOOLS_TOKENSIGNCTL_AUDIT_TAIL_H_

#include <string>
#include <string_view>

namespace tokensign::ctl {

// One raw log line (without its newline) as `audit tail` prints it; `number`
// is its 1-based line number in its file (for the error note).
std::string FormatTailLine(std::string_view line, long number);

// Prints the file's records (and, with `follow`, every record appended
// later). Exit code: 0, or 1 when the file cannot be opened or read.
int RunAuditTail(const std::string& path, bool follow);

}  // namespace tokensign::ctl

#endif  // TOKENSIGN_TOOLS_TOKENSIGNCTL_AUDIT_TAIL_H_
