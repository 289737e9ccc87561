#include "signer/token/token_request.h"

namespace tokensign::token {

const char* TokenKindName(TokenKind kind) {
  switch (kind) {
    case TokenKind::kAccessToken:
      return "access_token";
    case TokenKind::kTransactionToken:
      return "transaction_token";
  }
  return "unknown";
}

const char* TokenKindTyp(TokenKind kind) {
  switch (kind) {
    case TokenKind::kAccessToken:
      return "at+jwt";
    case TokenKind::kTransactionToken:
      return "txntoken+jwt";
  }
  return "unknown";
}

}  // namespace tokensign::token
