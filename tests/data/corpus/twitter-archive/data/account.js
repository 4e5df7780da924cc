window.YTD.account.part0 = [
  {
    "account" : {
      "email" : "mary@example.invalid",
      "createdVia" : "web",
      "username" : "mshelley",
      "accountId" : "1818181818",
      "createdAt" : "2011-06-23T13:04:14.000Z",
      "accountDisplayName" : "Mary"
    }
  }
]
